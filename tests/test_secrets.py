"""ll.secrets(): likely credentials in history, config and the files of every layer.

Each image is a real ``docker save`` archive or OCI layout written in the test
(``_archive_helpers``); the expected findings follow from what was written:
which layer holds which file, which step made it, which layer deletes it.
"""
from __future__ import annotations

import io
import json
import tarfile

import pytest

import layerlab as ll
from _archive_helpers import layer_tar, sha, write_legacy_archive, write_oci_layout
from layerlab.analysis._secret_rules import mask_secrets, mask_value
from layerlab.analysis.secrets import COLUMNS

# fabricated credentials, in the shapes the providers issue them
PRIVATE_KEY = (b"-----BEGIN OPENSSH PRIVATE KEY-----\n"
               b"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
               b"QyNTUxOQAAACDx3q0Lr7u9wQ2fYtB8kV4nZ1mJcP6sHdE0aXyRgT5uKwAAAJgqZ8mFKmfJ\n"
               b"-----END OPENSSH PRIVATE KEY-----\n")
NPM_TOKEN = "npm_Qx7Lm2Vb9Rt4Wz8Kp3Ny6Hc1Fd5Gs0Aj2Bk7"
AWS_KEY_ID = "AKIAZ7QW3RT5YU8IOP2M"
AWS_SECRET = "q8Vz/3Lm+Rt7Wb2Kx9Np4Hc6Fd1Gs5Aj0Yu3Ei8"
BUILD_PASSWORD = "correct-horse-battery-staple-42"
GH_TOKEN = "ghp_Zq8vK2pLx9Rt4Wm7Yb3Nc6Hd1Fg5Js0AqWeR"
RAW_SECRETS = [NPM_TOKEN, AWS_KEY_ID, AWS_SECRET, BUILD_PASSWORD, GH_TOKEN, PRIVATE_KEY.decode().splitlines()[1]]

LEAKY_HISTORY = [
    {"created_by": "/bin/sh -c #(nop) ADD file:0d1e2f in / "},
    {"created_by": f"ENV API_TOKEN={GH_TOKEN}", "comment": "buildkit.dockerfile.v0", "empty_layer": True},
    {"created_by": "COPY keys/ /root/ # buildkit", "comment": "buildkit.dockerfile.v0"},
    {"created_by": f"RUN |1 DB_PASSWORD={BUILD_PASSWORD} /bin/sh -c rm /root/.ssh/id_rsa && make # buildkit",
     "comment": "buildkit.dockerfile.v0"},
]


def _leaky_layers() -> list[bytes]:
    return [
        layer_tar({"etc/": b"", "etc/os-release": b"ID=test\n", "bin/sh": b"\x7fELF\0\0"}),
        layer_tar({"root/": b"", "root/.ssh/": b"", "root/.ssh/id_rsa": PRIVATE_KEY,
                   "root/.npmrc": f"//registry.npmjs.org/:_authToken={NPM_TOKEN}\n".encode()}),
        layer_tar({"root/.ssh/.wh.id_rsa": b"",
                   "app/.env": f"PORT=8080\nAWS_ACCESS_KEY_ID={AWS_KEY_ID}\nAWS_SECRET_ACCESS_KEY=\"{AWS_SECRET}\"\n".encode()}),
    ]


def _config(layers: list[bytes], history: list[dict], env: list[str], labels: dict | None = None) -> bytes:
    return json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Env": env, "Labels": labels or {}},
        "rootfs": {"type": "layers", "diff_ids": [sha(l) for l in layers]},
        "history": history,
    }).encode()


@pytest.fixture(scope="module")
def leaky(tmp_path_factory):
    path = tmp_path_factory.mktemp("leaky") / "leaky.tar"
    layers = _leaky_layers()
    cfg = _config(layers, LEAKY_HISTORY, ["PATH=/usr/local/bin:/usr/bin:/bin", f"API_TOKEN={GH_TOKEN}"])
    write_legacy_archive(path, layers, tags=("test/leaky:1",), config_bytes=cfg, compress_with="gzip")
    return ll.load(f"docker-archive:{path}")


@pytest.fixture(scope="module")
def found(leaky):
    return ll.secrets(leaky, cache_dir=False, progress=False)


def _rows(df, **where):
    sel = df
    for col, value in where.items():
        sel = sel[sel[col] == value]
    return sel


def test_columns_and_dtypes(found):
    df = found.to_frame()
    assert {c: str(t) for c, t in df.dtypes.items()} == COLUMNS
    assert set(df["image"]) == {"test/leaky:1"}


def test_private_key_deleted_by_a_later_layer_is_reported_with_the_step_that_added_it(found):
    df = found.to_frame()
    key = _rows(df, where="file", path="root/.ssh/id_rsa")
    assert len(key) == 1
    row = key.iloc[0]
    assert row["kind"] == "private key"
    assert row["position"] == 1 and row["step"] == 2          # layer 1, made by history step 2 (COPY)
    assert row["created_by"] == "COPY keys/ /root/ # buildkit"
    assert bool(row["deleted"]) and row["hidden_by"] == 2      # layer 2's whiteout deletes it
    assert row["line"] == 1
    assert "PrivateKeyDetector" in row["detector"]


def test_npmrc_token(found):
    df = found.to_frame()
    rows = _rows(df, where="file", path="root/.npmrc")
    assert rows["kind"].tolist() == ["npm token"]
    row = rows.iloc[0]
    assert row["position"] == 1 and row["step"] == 2 and not bool(row["deleted"]) and pd_isna(row["hidden_by"])
    assert row["value"] == NPM_TOKEN[:4] + "***"


def test_aws_keys_in_an_env_file(found):
    df = found.to_frame()
    rows = _rows(df, where="file", path="app/.env")
    assert sorted(rows["line"].tolist()) == [2, 3]             # PORT=8080 on line 1 is not a secret
    assert set(rows["position"]) == {2} and set(rows["step"]) == {3}
    assert _rows(rows, line=2)["kind"].tolist() == ["AWS key"]
    assert _rows(rows, line=2)["value"].tolist() == [AWS_KEY_ID[:4] + "***"]
    assert len(_rows(rows, line=3)) == 1


def test_build_arg_password_in_created_by(found):
    df = found.to_frame()
    rows = _rows(df, where="history", step=3)
    assert rows["key"].tolist() == ["build arg DB_PASSWORD"]
    assert rows["kind"].tolist() == ["password or secret (by its name)"]
    assert rows["position"].tolist() == [2]
    assert rows["value"].tolist() == [BUILD_PASSWORD[:4] + "***"]
    assert BUILD_PASSWORD not in rows["created_by"].iloc[0]
    assert rows["created_by"].iloc[0].startswith("RUN |1 DB_PASSWORD=corr***")


def test_env_secret_in_config_names_the_step_that_set_it(found):
    df = found.to_frame()
    env = _rows(df, where="env")
    assert env["key"].tolist() == ["API_TOKEN"]                # PATH is not a secret
    assert env["step"].tolist() == [1] and env["position"].isna().all()   # an ENV step makes no layer
    assert "GitHubTokenDetector" in env["detector"].iloc[0] and env["kind"].tolist() == ["GitHub token"]
    hist = _rows(df, where="history", step=1)
    assert hist["key"].tolist() == ["ENV API_TOKEN"]


def test_nothing_else(found):
    df = found.to_frame()
    assert sorted(df["where"].value_counts().items()) == [("env", 1), ("file", 4), ("history", 2)]
    assert "7 likely secrets in 1 of 1 image (1 in files a later layer deletes" in repr(found)


def test_masked_by_default_everywhere(found):
    df = found.to_frame()
    shown = [df.to_csv(), repr(found), found._repr_html_()]
    for text in shown:
        for raw in RAW_SECRETS:
            assert raw not in text, raw


def test_mask_false_shows_values(leaky):
    df = ll.secrets(leaky, mask=False, cache_dir=False, progress=False).to_frame()
    values = set(df["value"])
    for raw in (NPM_TOKEN, AWS_KEY_ID, BUILD_PASSWORD, GH_TOKEN):
        assert raw in values
    assert BUILD_PASSWORD in _rows(df, where="history", step=3)["created_by"].iloc[0]


def test_sources_can_be_left_out(leaky):
    only_files = ll.secrets(leaky, history=False, config=False, cache_dir=False, progress=False).to_frame()
    assert set(only_files["where"]) == {"file"}
    no_files = ll.secrets(leaky, files=False, cache_dir=False, progress=False).to_frame()
    assert set(no_files["where"]) == {"history", "env"}


def test_clean_image_has_no_findings(tmp_path):
    layers = [
        layer_tar({"etc/": b"", "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
                   "etc/nsswitch.conf": b"passwd:         files\ngroup:          files\n",
                   "etc/debconf.conf": b"# Name: ldapdb\n#bindpasswd: secret\n",
                   "etc/ssl/certs/ca.pem": b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}),
        layer_tar({"app/": b"", "app/config.yaml": b"debug: true\nport: 8080\n", "app/.env": b"LANG=C.UTF-8\nPORT=8080\n",
                   "root/.ssh/id_rsa.pub": b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPq test\n"}),
    ]
    history = [{"created_by": "/bin/sh -c #(nop) ADD file:0d1e2f in / "},
               {"created_by": "ENV GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D", "empty_layer": True},
               {"created_by": "RUN |1 VERSION=1.2.3 /bin/sh -c make install # buildkit"}]
    env = ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D",
           "PYTHON_SHA256=8fb5f9fbc7609fa822cb31549884575db7fd9657cbffb89510b5d7975963a83a"]
    labels = {"org.opencontainers.image.revision": "3f2a1b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a"}
    path = tmp_path / "clean.tar"
    write_legacy_archive(path, layers, config_bytes=_config(layers, history, env, labels))
    res = ll.secrets(ll.load(f"docker-archive:{path}"), cache_dir=False, progress=False)
    assert len(res.to_frame()) == 0
    assert "0 likely secrets in 0 of 1 image" in repr(res)


def test_oci_layout_gzip_and_a_fleet(tmp_path, leaky):
    layers = _leaky_layers()
    write_oci_layout(tmp_path / "oci", [(l, "application/vnd.oci.image.layer.v1.tar+gzip") for l in layers],
                     history=LEAKY_HISTORY)
    oci = ll.load(f"oci:{tmp_path / 'oci'}")
    res = ll.secrets(ll.Fleet([leaky, oci]), config=False, cache_dir=False, progress=False).to_frame()
    mine = res[res["image"] == oci.reference]
    assert sorted(mine[mine["where"] == "file"]["path"]) == ["app/.env", "app/.env", "root/.npmrc",
                                                             "root/.ssh/id_rsa"]
    assert bool(mine[mine["path"] == "root/.ssh/id_rsa"]["deleted"].iloc[0])


def test_binary_keystore_reported_by_name(tmp_path):
    layers = [layer_tar({"opt/app/keystore.p12": b"0\x82\x0a\x01\0\0binary", "opt/app/tls.key": PRIVATE_KEY})]
    path = tmp_path / "ks.tar"
    write_legacy_archive(path, layers, history=[{"created_by": "COPY . /opt/app"}])
    df = ll.secrets(ll.load(f"docker-archive:{path}"), cache_dir=False, progress=False).to_frame()
    assert sorted(zip(df["path"], df["kind"], df["detector"])) == [
        ("opt/app/keystore.p12", "keystore file", "layerlab:file-name"),
        ("opt/app/tls.key", "private key", "detect-secrets:PrivateKeyDetector")]


def test_large_file_read_only_up_to_the_cap(tmp_path):
    body = b"x = 1\n" * 2000 + f"password = \"{BUILD_PASSWORD}\"\n".encode()
    layers = [layer_tar({"srv/settings.ini": body})]
    path = tmp_path / "big.tar"
    write_legacy_archive(path, layers, history=[{"created_by": "COPY settings.ini /srv/"}])
    img = ll.load(f"docker-archive:{path}")
    whole = ll.secrets(img, cache_dir=False, progress=False)
    assert _rows(whole.to_frame(), path="srv/settings.ini")["line"].tolist() == [2001]
    capped = ll.secrets(img, max_file_bytes=1000, cache_dir=False, progress=False)
    assert len(capped.to_frame()) == 0
    assert any("max_file_bytes=1000" in n for n in capped.notes)


def test_bad_input_is_an_analysis_error():
    with pytest.raises(ll.AnalysisError, match="secrets\\(\\): data is a str"):
        ll.secrets("docker-archive:x.tar")


def test_mask_secrets_and_mask_value():
    assert mask_value("short") == "***"
    assert mask_value(NPM_TOKEN) == "npm_***"
    text = f"RUN |1 DB_PASSWORD={BUILD_PASSWORD} /bin/sh -c curl -H 'x: {GH_TOKEN}' https://example.test"
    out = mask_secrets(text)
    assert BUILD_PASSWORD not in out and GH_TOKEN not in out
    assert "DB_PASSWORD=corr***" in out and "ghp_***" in out and out.endswith("https://example.test")
    assert mask_secrets("apt-get install -y curl") == "apt-get install -y curl"


def pd_isna(v) -> bool:
    import pandas as pd

    return bool(pd.isna(v))


def test_cli_masks_history_unless_asked(leaky, capsys):
    from layerlab.cli import main

    assert main(["history", leaky.location, "--columns", "created_by"]) == 0
    out = capsys.readouterr().out
    assert BUILD_PASSWORD not in out and GH_TOKEN not in out
    assert "DB_PASSWORD=corr***" in out and "API_TOKEN=ghp_***" in out
    assert main(["history", leaky.location, "--columns", "created_by", "--show-secrets"]) == 0
    out = capsys.readouterr().out
    assert BUILD_PASSWORD in out and GH_TOKEN in out


def test_report_html_masks_outputs_and_chart_data():
    import nbformat

    from layerlab.report import notebook_to_html

    step = f"RUN |1 DB_PASSWORD={BUILD_PASSWORD} /bin/sh -c make"
    spec = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "mark": "bar",
            "data": {"values": [{"created_by": step, "size": 1}, {"created_by": f"ENV API_TOKEN={GH_TOKEN}", "size": 2}]},
            "encoding": {"x": {"field": "size", "type": "quantitative"}, "y": {"field": "created_by", "type": "nominal"}}}
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"text/html": f"<table><tr><td>{step}</td></tr></table>",
                                                     "text/plain": step}),
        nbformat.v4.new_output("stream", name="stdout", text=f"token {GH_TOKEN}\n"),
        nbformat.v4.new_output("display_data", data={"application/vnd.vegalite.v5+json": spec}),
    ]
    nb = nbformat.v4.new_notebook(cells=[cell])
    page = notebook_to_html(nb)
    assert BUILD_PASSWORD not in page and GH_TOKEN not in page
    assert "DB_PASSWORD=corr***" in page and "ghp_***" in page
    shown = notebook_to_html(nb, mask_secrets=False)
    assert BUILD_PASSWORD in shown and GH_TOKEN in shown


def test_snapshot_with_file_tables_is_judged_by_name(tmp_path, leaky):
    out = tmp_path / "snap"
    leaky.files(hash=None, cache_dir=out / "files", progress=False)   # the snapshot's files/ = the cache layout
    ll.Fleet([leaky]).save(out)
    img = ll.load_many(f"snapshot:{out}")[0]
    assert img.blobs is None and img.has_file_tables
    res = ll.secrets(img, cache_dir=False, progress=False)
    df = res.to_frame()
    files = df[df["where"] == "file"]
    # no contents to read: only names that are findings by themselves (a .env file is not one)
    assert sorted(zip(files["path"], files["kind"], files["deleted"])) == [
        ("root/.npmrc", "npm config", False), ("root/.ssh/id_rsa", "private key file", True)]
    assert set(files["detector"]) == {"layerlab:file-name"}
    assert any("judged by name only" in n for n in res.notes)
    assert sorted(df[df["where"] != "file"]["where"]) == ["env", "history", "history"]   # history and config still read


def test_read_budget_spent_falls_back_to_names(leaky):
    res = ll.secrets(leaky, history=False, config=False, max_read_bytes=0, cache_dir=False, progress=False)
    df = res.to_frame()
    assert sorted(zip(df["path"], df["kind"])) == [("root/.npmrc", "npm config"),
                                                   ("root/.ssh/id_rsa", "private key file")]
    assert any("max_read_bytes" in n for n in res.notes)


def test_cli_secrets_command(leaky, capsys, tmp_path):
    from layerlab.cli import main

    assert main(["secrets", leaky.location, "--columns", "where,path,kind,value"]) == 0
    out = capsys.readouterr().out
    assert "root/.ssh/id_rsa" in out and "npm_***" in out and NPM_TOKEN not in out
    csv = tmp_path / "s.csv"
    assert main(["secrets", leaky.location, "-o", str(csv), "--show-secrets"]) == 0
    assert NPM_TOKEN in csv.read_text()


def test_report_masking_leaves_images_alone():
    import nbformat

    from layerlab.report import _masked

    png = "iVBORw0KGgo" + GH_TOKEN   # whatever an image's base64 holds, it is not text to mask
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": GH_TOKEN})]
    nb = nbformat.v4.new_notebook(cells=[cell])
    _masked(nb, [])
    assert nb.cells[0].outputs[0]["data"]["image/png"] == png
    assert GH_TOKEN not in nb.cells[0].outputs[0]["data"]["text/plain"]


def test_odd_history_and_config_are_no_findings(tmp_path):
    layers = [layer_tar({"a": b"x"})]
    history = [{"created_by": "ENV"}, {"created_by": "/bin/sh -c #(nop)  LABEL "}, {"created_by": 'ENV A="unclosed'},
               {"created_by": "RUN |9 /bin/sh -c true"}, {"created_by": "COPY a /a"}]
    cfg = json.loads(_config(layers, history, []))
    cfg["config"] = {"Env": "PASSWORD=not-a-list", "Labels": {"k": 5, "password": None}}
    path = tmp_path / "odd.tar"
    write_legacy_archive(path, layers, config_bytes=json.dumps(cfg).encode())
    res = ll.secrets(ll.load(f"docker-archive:{path}"), cache_dir=False, progress=False)
    assert len(res.to_frame()) == 0
    assert mask_secrets("ENV") == "ENV" and mask_secrets("LABEL ") == "LABEL "


def test_credential_files_by_their_own_syntax(tmp_path):
    """Unquoted ``key = value`` files, and the three forms detect-secrets has no plugin for."""
    files = {
        "root/.pypirc": b"[pypi]\nusername = __token__\npassword = Tr0ub4dor-and-3-more\n",
        "root/.aws/credentials": f"[default]\naws_secret_access_key = {AWS_SECRET}\n".encode(),
        "root/.netrc": b"machine example.test login bob password Tr0ub4dor3xyz\n",
        "root/.docker/config.json": b'{"auths": {"registry.example.test": {"auth": "Ym9iOlRyMHViNGRvcjN4eXo="}}}\n',
        "root/.kube/config": b"users:\n- name: ci\n  user:\n    token: eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.sig\n",
        "srv/app/.env": b"PORT=8080\nDB_PASSWORD=hunter2horse\nexport SESSION_KEY=Zq8vK2pLx9Rt4Wm7Yb3Nc6Hd1Fg5Js0AAAQQ\n"
                        b"APP_SHA256=8fb5f9fbc7609fa822cb31549884575db7fd9657cbffb89510b5d7975963a83a\n",
    }
    path = tmp_path / "creds.tar"
    write_legacy_archive(path, [layer_tar(files)], history=[{"created_by": "COPY . /"}])
    df = ll.secrets(ll.load(f"docker-archive:{path}"), mask=False, cache_dir=False, progress=False).to_frame()
    got = {(p, line): (v, d) for p, line, v, d in zip(df["path"], df["line"], df["value"], df["detector"])}
    assert got[("root/.pypirc", 3)][0] == "Tr0ub4dor-and-3-more"
    assert got[("root/.aws/credentials", 2)][0] == AWS_SECRET
    assert got[("root/.netrc", 1)] == ("Tr0ub4dor3xyz", "layerlab:netrc")
    assert got[("root/.docker/config.json", 1)] == ("Ym9iOlRyMHViNGRvcjN4eXo=", "layerlab:docker")
    assert got[("root/.kube/config", 4)][0] == "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.sig"
    assert got[("srv/app/.env", 2)][0] == "hunter2horse"
    assert got[("srv/app/.env", 3)][0] == "Zq8vK2pLx9Rt4Wm7Yb3Nc6Hd1Fg5Js0AAAQQ"   # unquoted, high entropy
    assert ("srv/app/.env", 4) not in got                                       # a checksum by its name
    assert len(df) == 7


def test_layer_changed_after_the_table_scan_is_a_digest_mismatch(tmp_path):
    """The candidates are read again from the blob: with verify (default) that read
    is checked against the diff_id too, so a layer swapped in between is caught."""
    layers = _leaky_layers()
    path = tmp_path / "swap.tar"
    meta = write_legacy_archive(path, layers, history=LEAKY_HISTORY)
    img = ll.load(f"docker-archive:{path}")
    img.files(hash=None, cache_dir=False, progress=False)           # tables read and verified, kept on the image
    other = layer_tar({"root/": b"", "root/.npmrc": b"registry=https://example.test/\n"})
    with tarfile.open(path) as tf:                                  # rewrite the archive: layer 1's bytes change
        members = [(m, tf.extractfile(m).read() if m.isfile() else None) for m in tf.getmembers()]
    with tarfile.open(path, "w") as tf:
        for m, data in members:
            if m.name == meta["layer_names"][1]:
                assert len(other) <= len(data)                      # same length: the offsets stay
                data = other + b"\0" * (len(data) - len(other))
            tf.addfile(m, io.BytesIO(data) if data is not None else None)
    with pytest.raises(ll.DigestMismatchError, match="layer 1"):
        ll.secrets(img, history=False, config=False, cache_dir=False, progress=False)
    # unverified, the new bytes are read as they are: the token is gone from .npmrc
    df = ll.secrets(img, history=False, config=False, verify=False, cache_dir=False, progress=False).to_frame()
    assert "root/.npmrc" not in set(df["path"])
