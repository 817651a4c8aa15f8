import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notes import create_app
from notes.db import get_db, migrate


@pytest.fixture
def app(tmp_path):
    app = create_app({"TESTING": True, "DATABASE": str(tmp_path / "test.sqlite")})
    with app.app_context():
        migrate(get_db())
    return app


@pytest.fixture
def client(app):
    return app.test_client()
