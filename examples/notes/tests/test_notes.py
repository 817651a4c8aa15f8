from notes.db import get_db, migrate


def test_new_notes_are_listed(client):
    assert client.post("/notes", json={"body": "buy milk"}).status_code == 201
    client.post("/notes", data={"body": "call mum"})
    assert [n["body"] for n in client.get("/notes.json").get_json()] == ["call mum", "buy milk"]
    assert b"call mum" in client.get("/").data


def test_empty_note_is_refused(client):
    assert client.post("/notes", json={"body": "  "}).status_code == 400


def test_migrate_is_idempotent(app):
    with app.app_context():
        assert migrate(get_db()) == []


def test_init_db_erases_everything(app, client):
    client.post("/notes", json={"body": "gone soon"})
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert "Initialized the database." in result.output
    assert client.get("/notes.json").get_json() == []


def test_health(client):
    assert client.get("/health").data == b"ok\n"


def test_stylesheet_is_linked(client):
    assert b"/static/style.css" in client.get("/").data
