"""The sample app answers as the guide says."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wsgi import app


def test_root_says_hello():
    response = app.test_client().get("/")
    assert response.status_code == 200
    assert b"Hello There!" in response.data


def test_unknown_path_is_404():
    assert app.test_client().get("/nope").status_code == 404
