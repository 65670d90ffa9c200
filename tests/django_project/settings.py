"""A minimal Django project for tests/test_django.py: no database, no apps,
brakes' middleware alone. Each test sets BRAKES_LOADSHED with
override_settings before Django loads the middleware."""

SECRET_KEY = "brakes-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "tests.django_project.urls"
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, object] = {}
MIDDLEWARE = ["brakes.django.LoadShedMiddleware"]
USE_TZ = True
# Django logs every 4xx and 5xx answer; the tests check them themselves.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"django": {"handlers": ["null"], "propagate": False}},
}
