//! The frozen snapshots `stats()` returns: one macro makes each from its
//! core snapshot, with a repr that shows every field.

/// A field as Python prints it.
pub trait Shown {
    fn shown(&self) -> String;
}

impl Shown for u64 {
    fn shown(&self) -> String {
        self.to_string()
    }
}

impl Shown for bool {
    fn shown(&self) -> String {
        if *self { "True" } else { "False" }.to_owned()
    }
}

/// `stats_class!(Name from core::Snapshot { field: type, ... })`, each field
/// with its docstring, copied from the core snapshot's field of that name.
macro_rules! stats_class {
    ($(#[$meta:meta])* $name:ident from $snapshot:ty {
        $($(#[doc = $doc:literal])* $field:ident: $ty:ty),* $(,)?
    }) => {
        $crate::py::stats::stats_class!($(#[$meta])* $name {
            $($(#[doc = $doc])* $field: $ty,)*
        });

        impl From<$snapshot> for $name {
            fn from(s: $snapshot) -> Self {
                Self { $($field: s.$field,)* }
            }
        }
    };
    ($(#[$meta:meta])* $name:ident {
        $($(#[doc = $doc:literal])* $field:ident: $ty:ty),* $(,)?
    }) => {
        $(#[$meta])*
        #[pyo3::pyclass(frozen, eq, hash, get_all, module = "brakes")]
        #[derive(PartialEq, Eq, Hash)]
        pub struct $name {
            $($(#[doc = $doc])* $field: $ty,)*
        }

        #[pyo3::pymethods]
        impl $name {
            fn __repr__(&self) -> String {
                let fields = [$(
                    format!(
                        "{}={}",
                        stringify!($field),
                        $crate::py::stats::Shown::shown(&self.$field)
                    ),
                )*];
                format!("{}({})", stringify!($name), fields.join(", "))
            }
        }
    };
}
pub(crate) use stats_class;
