"""Security of the server: artifact paths never leave the destination, auth,
the Host header, CORS, and no internals in error bodies."""

from __future__ import annotations

import base64
import json

import pytest

from autolog.server import ServerSettings, create_app
from autolog.server.auth import Authenticator, hash_password, hash_token
from tests.server.servers import call, serving

AR = "/api/2.0/mlflow-artifacts/artifacts"


@pytest.fixture
def layout(tmp_path):
    """A destination folder, a secret file beside it, a symlink from inside to outside."""
    destination = tmp_path / "dest"
    (destination / "1/r/artifacts").mkdir(parents=True)
    (destination / "1/r/artifacts/ok.txt").write_text("fine")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP-SECRET")
    (destination / "1/r/artifacts/link").symlink_to(outside, target_is_directory=True)
    return tmp_path, destination, outside


def _settings(tmp_path, destination, **extra) -> ServerSettings:
    return ServerSettings(
        backend_store_uri=f"sqlite:///{tmp_path / 'db.sqlite'}",
        artifacts_destination=str(destination),
        **extra,
    )


TRAVERSALS = [
    "../../outside/secret.txt",
    "1/../../outside/secret.txt",
    "%2e%2e/%2e%2e/outside/secret.txt",
    "%2E%2E/outside/secret.txt",
    "..%2f..%2foutside%2fsecret.txt",
    "%252e%252e/%252e%252e/outside/secret.txt",
    "%25252e%25252e/outside/secret.txt",
    "..%5c..%5coutside%5csecret.txt",
    "..\\..\\outside\\secret.txt",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "C:/Windows/win.ini",
    "1/r/artifacts/link/secret.txt",
    "1/r/artifacts/ok.txt%00.png",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_every_traversal_form_is_refused(layout, path):
    tmp_path, destination, outside = layout
    app = create_app(_settings(tmp_path, destination))
    with serving(app) as url:
        status, _, body = call(url, "GET", f"{AR}/{path}")
        assert status in (400, 404), (path, status, body)
        assert b"TOP-SECRET" not in body
        assert json.loads(body)["error_code"] in (
            "INVALID_PARAMETER_VALUE",
            "RESOURCE_DOES_NOT_EXIST",
        )
        status, _, _ = call(url, "PUT", f"{AR}/{path}", b"overwritten")
        assert status in (400, 404), (path, status)
        status, _, _ = call(url, "DELETE", f"{AR}/{path}")
        assert status in (400, 404), (path, status)
        status, _, body = call(url, "GET", f"{AR}?path={path}")
        assert status == 400 or json.loads(body) == {}, (path, status, body)
    assert (outside / "secret.txt").read_text() == "TOP-SECRET"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert not (tmp_path / "etc").exists()


def test_a_path_inside_works_and_streams_back(layout):
    tmp_path, destination, _ = layout
    with serving(create_app(_settings(tmp_path, destination))) as url:
        assert call(url, "GET", f"{AR}/1/r/artifacts/ok.txt")[2] == b"fine"
        status, headers, _ = call(url, "PUT", f"{AR}/1/r/artifacts/dir%20x/new+1%25.html", b"<b>")
        assert status == 200
        status, headers, body = call(url, "GET", f"{AR}/1/r/artifacts/dir%20x/new+1%25.html")
        assert body == b"<b>"
        assert headers["content-disposition"].startswith("attachment")
        assert headers["content-security-policy"] == "sandbox"
    assert (destination / "1/r/artifacts/dir x/new+1%.html").read_bytes() == b"<b>"


@pytest.fixture
def auth_file(tmp_path):
    path = tmp_path / "auth.json"
    path.write_text(
        json.dumps(
            {"tokens": [hash_token("good-token")], "users": {"alice": hash_password("pw-alice")}}
        )
    )
    return path


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_auth_no_token_wrong_token_right_token(tmp_path, auth_file):
    settings = _settings(tmp_path, tmp_path / "dest", auth_file=str(auth_file))
    get = "/api/2.0/mlflow/experiments/get?experiment_id=0"
    with serving(create_app(settings)) as url:
        status, headers, body = call(url, "GET", get)
        assert status == 401 and json.loads(body)["error_code"] == "UNAUTHENTICATED"
        assert headers["www-authenticate"].startswith("Basic")
        assert call(url, "GET", get, headers={"Authorization": "Bearer bad-token"})[0] == 401
        assert call(url, "GET", get, headers={"Authorization": "Bearer good-tokenX"})[0] == 401
        assert call(url, "GET", get, headers={"Authorization": "Bearer good-token"})[0] == 200
        assert call(url, "GET", get, headers=_basic("alice", "pw-alice"))[0] == 200
        assert call(url, "GET", get, headers=_basic("alice", "pw-alice"))[0] == 200  # cached
        assert call(url, "GET", get, headers=_basic("alice", "wrong"))[0] == 401
        assert call(url, "GET", get, headers=_basic("bob", "pw-alice"))[0] == 401
        # artifacts and everything else are behind it too; /health is open
        assert call(url, "PUT", f"{AR}/1/x.txt", b"x")[0] == 401
        assert call(url, "GET", "/")[0] == 401
        assert call(url, "GET", "/health")[0] == 200
    assert not (tmp_path / "dest/1/x.txt").exists()


def test_a_verified_password_is_remembered_not_rehashed(monkeypatch):
    auth = Authenticator([], {"alice": hash_password("pw")})
    header = _basic("alice", "pw")["Authorization"]
    assert auth.check(header)
    import autolog.server.auth as auth_module

    def no_kdf(*args, **kwargs):
        raise AssertionError("scrypt ran again for a verified credential")

    monkeypatch.setattr(auth_module.hashlib, "scrypt", no_kdf)
    assert auth.check(header)
    with pytest.raises(AssertionError):
        auth.check(_basic("alice", "other")["Authorization"])


def test_a_bad_auth_file_is_a_typed_error(tmp_path):
    from autolog.errors import InvalidParameterError

    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"tokens": ["plain-secret"]}))
    with pytest.raises(InvalidParameterError, match="sha256"):
        Authenticator.from_file(path)
    path.write_text("{}")
    with pytest.raises(InvalidParameterError, match="no token"):
        Authenticator.from_file(path)


def test_a_foreign_host_header_is_refused(tmp_path):
    get = "/api/2.0/mlflow/experiments/get?experiment_id=0"
    with serving(create_app(_settings(tmp_path, tmp_path / "d"))) as url:
        status, _, body = call(url, "GET", get, headers={"Host": "attacker.example:5000"})
        assert status == 403 and b"attacker.example" in body
        assert call(url, "GET", get, headers={"Host": "localhost:5000"})[0] == 200
        assert call(url, "GET", "/health", headers={"Host": "attacker.example"})[2] == b"OK"
        assert call(url, "GET", get, headers={"Host": "10.1.2.3:5000"})[0] == 200
    settings = _settings(tmp_path, tmp_path / "d", allowed_hosts=["*.corp.example", "mlflow:80"])
    with serving(create_app(settings)) as url:
        assert call(url, "GET", get, headers={"Host": "ml.corp.example"})[0] == 200
        assert call(url, "GET", get, headers={"Host": "mlflow:80"})[0] == 200
        assert call(url, "GET", get, headers={"Host": "mlflow:81"})[0] == 403
        assert call(url, "GET", get, headers={"Host": "localhost"})[0] == 403


def test_no_cors_unless_asked(tmp_path):
    get = "/api/2.0/mlflow/experiments/get?experiment_id=0"
    origin = {"Origin": "https://ui.example"}
    with serving(create_app(_settings(tmp_path, tmp_path / "d"))) as url:
        _, headers, _ = call(url, "GET", get, headers=origin)
        assert "access-control-allow-origin" not in headers
    settings = _settings(tmp_path, tmp_path / "d", cors_allowed_origins=["https://ui.example"])
    with serving(create_app(settings)) as url:
        _, headers, _ = call(url, "GET", get, headers=origin)
        assert headers["access-control-allow-origin"] == "https://ui.example"
        _, headers, _ = call(url, "GET", get, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in headers


def test_an_unexpected_error_has_no_stack_trace_in_its_body(tmp_path):
    app = create_app(_settings(tmp_path, tmp_path / "d"))

    def broken(run_id):
        raise RuntimeError("internal detail /secret/path")

    app.state.store.get_run = broken
    with serving(app) as url:
        status, _, body = call(url, "GET", "/api/2.0/mlflow/runs/get?run_id=abc")
    assert status == 500
    assert json.loads(body)["error_code"] == "INTERNAL_ERROR"
    assert b"Traceback" not in body and b"/secret/path" not in body and b"File " not in body


def test_a_post_without_json_content_type_is_refused(tmp_path):
    with serving(create_app(_settings(tmp_path, tmp_path / "d"))) as url:
        status, _, body = call(
            url, "POST", "/api/2.0/mlflow/experiments/create", b'{"name": "x"}',
            headers={"Content-Type": "text/plain"},
        )  # fmt: skip
        assert status == 400
        status, _, body = call(
            url, "GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=x"
        )
        assert status == 404 and json.loads(body)["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_request_size_limits_are_configurable_and_4xx(tmp_path):
    settings = _settings(
        tmp_path, tmp_path / "d", max_request_bytes=10_000, max_artifact_bytes=1_000
    )
    with serving(create_app(settings)) as url:
        big = {"name": "x" * 20_000}
        status, _, body = call(url, "POST", "/api/2.0/mlflow/experiments/create", big)
        assert status == 413 and json.loads(body)["error_code"] == "REQUEST_TOO_LARGE"
        assert call(url, "PUT", f"{AR}/1/r/artifacts/small.bin", b"x" * 1_000)[0] == 200
        assert call(url, "PUT", f"{AR}/1/r/artifacts/big.bin", b"x" * 1_001)[0] == 413
    assert not (tmp_path / "d/1/r/artifacts/big.bin").exists()
    assert [p.name for p in (tmp_path / "d/1/r/artifacts").iterdir()] == ["small.bin"]


def test_the_auth_helper_prints_lines_the_server_accepts(capsys, monkeypatch):
    import io

    from autolog.server.auth import _main

    assert _main(["token"]) == 0
    out = capsys.readouterr().out.splitlines()
    token, line = out[0].split()[-1], out[1].split()[-1]
    monkeypatch.setattr("sys.stdin", io.StringIO("pw-bob\n"))
    assert _main(["password", "bob"]) == 0
    users = json.loads(capsys.readouterr().out)
    auth = Authenticator([line], users)
    assert auth.check(f"Bearer {token}") and not auth.check(f"Bearer {token[:-1]}")
    assert auth.check(_basic("bob", "pw-bob")["Authorization"])
    assert "pw-bob" not in json.dumps(users)
