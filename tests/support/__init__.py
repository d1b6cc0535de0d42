"""Helpers tests import (conftest only defines fixtures)."""
