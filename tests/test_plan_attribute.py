"""An install layer split by package between install units (plan/attribute.py),
on hand-made layers whose bytes are written here: expected shares are the
byte counts of the files written, added up by hand."""
from __future__ import annotations

import pytest
from _archive_helpers import write_legacy_archive
from test_merge import history, layer, own_cache  # noqa: F401 - own_cache: a file-table cache of this module's own

import layerlab as ll
from layerlab.analysis.plan.attribute import image_layer_split, split_layer
from layerlab.contents.members import read_members

PIP3_LIST = b"/.\n/usr\n/usr/bin\n/usr/bin/pip3\n/etc\n/etc/ssl\n/etc/ssl/certs\n"
LIBPY_LIST = b"/.\n/usr\n/usr/lib\n/usr/lib/libpy.so\n"
LESS_LIST = b"/.\n/usr\n/usr/bin\n/usr/bin/less\n/usr/bin/lessfile\n/etc\n"
STATUS = (b"Package: pip3\nStatus: install ok installed\nDepends: libpy (>= 1.0), base-files | dash\n\n"
          b"Package: libpy\nArchitecture: amd64\nStatus: install ok installed\nProvides: libpython\n\n"
          b"Package: less\nStatus: install ok installed\nDepends: libc6\n\n")
APT_LAYER = [
    ("f", "usr/bin/pip3", 1000), ("f", "usr/lib/libpy.so", 5000), ("f", "usr/bin/less", 300),
    ("s", "usr/bin/lessfile", "lesspipe"),                      # 0 bytes in a built layer
    ("f", "var/lib/dpkg/info/pip3.list", PIP3_LIST), ("f", "var/lib/dpkg/info/libpy:amd64.list", LIBPY_LIST),
    ("f", "var/lib/dpkg/info/less.list", LESS_LIST), ("f", "var/lib/dpkg/info/less.md5sums", 50),
    ("f", "var/lib/dpkg/status", STATUS), ("f", "var/log/dpkg.log", 200),
    ("f", "var/lib/apt/lists/deb.debian.org_Packages", 9000), ("f", "var/cache/apt/pkgcache.bin", 4000),
    ("f", "etc/ssl/certs/ca-certificates.crt", 700),           # generated: etc/ssl/certs is pip3's
    ("f", "etc/ld.so.cache", 60),                               # generated: etc is pip3's and less's
]
UNITS = [("apt", frozenset({"pip3"})), ("apt", frozenset({"less"}))]


def _entries(spec):
    out = []
    for e in spec:
        if e[0] == "f":
            out.append((e[1], "file", len(e[2]) if isinstance(e[2], bytes) else e[2], None))
        elif e[0] == "s":
            out.append((e[1], "symlink", 0, e[2]))
        else:
            out.append((e[1], "dir", 0, None))
    return out


def _metadata(spec):
    return {e[1]: e[2] for e in spec if e[0] == "f" and isinstance(e[2], bytes)}


def test_apt_layer_split_by_dpkg_lists_with_dependencies():
    s = split_layer(_entries(APT_LAYER), _metadata(APT_LAYER), UNITS)
    # pip3 + libpy (its dependency, new in this layer) + their lists + the two generated files
    assert s.own[0] == 1000 + 5000 + len(PIP3_LIST) + len(LIBPY_LIST) + 700 + 60
    assert s.own[1] == 300 + len(LESS_LIST) + 50
    # dpkg status and the log: each unit's RUN writes its own copy
    assert s.rewritten == [len(STATUS) + 200] * 2
    assert s.dropped == 9000 + 4000


def test_apt_dependency_goes_with_the_first_unit_reaching_it():
    # less first: libpy is still pip3's (only pip3 depends on it); a package asked for by a
    # unit is that unit's even when an earlier unit's dependencies reach it
    s = split_layer(_entries(APT_LAYER), _metadata(APT_LAYER), [UNITS[1], UNITS[0]])
    assert s.own[1] == 1000 + 5000 + len(PIP3_LIST) + len(LIBPY_LIST) + 700
    assert s.own[0] == 300 + len(LESS_LIST) + 50 + 60  # ld.so.cache: the first unit of those owning /etc


SP = "usr/local/lib/python3.11/dist-packages/"
REQ_RECORD = (b"requests/__init__.py,sha256=x,400\nrequests-2.32.3.dist-info/METADATA,,\n"
              b"requests-2.32.3.dist-info/RECORD,,\n../../../bin/req,sha256=y,30\n")
REQ_META = (b"Metadata-Version: 2.1\nName: requests\nVersion: 2.32.3\nRequires-Dist: idna (<4,>=2.5)\n"
            b"Requires-Dist: PySocks!=1.5.7,>=1.5.6; extra == \"socks\"\n\n")
IDNA_RECORD = b"idna/core.py,sha256=z,900\nidna-3.7.dist-info/RECORD,,\n"
SIX_RECORD = b"six.py,sha256=w,700\nsix-1.16.0.dist-info/RECORD,,\n"
PIP_LAYER = [
    ("f", SP + "requests/__init__.py", 400), ("f", SP + "requests-2.32.3.dist-info/METADATA", REQ_META),
    ("f", SP + "requests-2.32.3.dist-info/RECORD", REQ_RECORD), ("f", "usr/local/bin/req", 30),
    ("f", SP + "requests-2.32.3.dist-info/INSTALLER", 4),          # not in RECORD: the dist-info's all the same
    ("f", SP + "idna/core.py", 900), ("f", SP + "idna-3.7.dist-info/RECORD", IDNA_RECORD),
    ("f", SP + "six.py", 700), ("f", SP + "six-1.16.0.dist-info/RECORD", SIX_RECORD),
    ("f", "root/.cache/pip/http/ab", 5000),
]


def test_pip_layer_split_by_record_with_requires_dist():
    s = split_layer(_entries(PIP_LAYER), _metadata(PIP_LAYER),
                    [("pip", frozenset({"six==1.16.0"})), ("pip", frozenset({"Requests"}))])
    assert s.own[0] == 700 + len(SIX_RECORD)
    assert s.own[1] == 400 + len(REQ_META) + len(REQ_RECORD) + 30 + 4 + 900 + len(IDNA_RECORD)
    assert s.rewritten == [0, 0]
    assert s.dropped == 5000


def test_npm_layer_split_by_package_directory():
    nm = "usr/lib/node_modules/"
    spec = [("f", nm + "lodash/package.json", b'{"name": "lodash"}'), ("f", nm + "lodash/lodash.js", 5000),
            ("f", nm + "@scope/tool/package.json", b'{"dependencies": {"ms": "2"}}'),
            ("f", nm + "@scope/tool/node_modules/inner/index.js", 70), ("f", nm + "ms/index.js", 60),
            ("f", "root/.npm/_cacache/index", 800)]
    s = split_layer(_entries(spec), _metadata(spec), [("npm", frozenset({"lodash@4.17.21"})),
                                                      ("npm", frozenset({"@scope/tool"}))])
    assert s.own == [18 + 5000, 29 + 70 + 60]
    assert s.dropped == 800


@pytest.fixture(scope="module")
def apt_image(tmp_path_factory):
    p = tmp_path_factory.mktemp("attr") / "img.tar"
    base = layer(("d", "etc"), ("f", "etc/os-release", 100))
    cmds = ["", "RUN /bin/sh -c apt-get install -y pip3 less # buildkit"]
    write_legacy_archive(p, [base, layer(*APT_LAYER)], tags=("test/attr:1",), history=history(cmds))
    return ll.load(f"docker-archive:{p}")


def test_read_members_reads_the_layer_files_asked_for(apt_image):
    got = read_members(apt_image, 1, lambda p: p.startswith("var/lib/dpkg/"))
    assert got == {"var/lib/dpkg/info/pip3.list": PIP3_LIST, "var/lib/dpkg/info/libpy:amd64.list": LIBPY_LIST,
                   "var/lib/dpkg/info/less.list": LESS_LIST, "var/lib/dpkg/info/less.md5sums": layer_bytes(50),
                   "var/lib/dpkg/status": STATUS}


def layer_bytes(n: int) -> bytes:
    """What test_merge.layer writes for a file of ``n`` bytes named var/lib/dpkg/info/less.md5sums."""
    name = "var/lib/dpkg/info/less.md5sums"
    return bytes((i * 7 + len(name)) % 251 for i in range(n))


def test_image_layer_split_reads_the_image(apt_image):
    s = image_layer_split(apt_image, 1, UNITS)
    assert s.own == [1000 + 5000 + len(PIP3_LIST) + len(LIBPY_LIST) + 700 + 60, 300 + len(LESS_LIST) + 50]
    assert s.dropped == 13000


def test_plan_sizes_a_unit_cut_from_a_shared_step(apt_image, tmp_path):
    """a1 installs pip3 and less in one RUN, a2 only pip3: the a1-only unit (less) is sized
    from a1's layer (its files + the rewritten dpkg status and log), flagged as estimated."""
    p = tmp_path / "a2.tar"
    pip3_only = [e for e in APT_LAYER if "less" not in e[1] and e[1] != "etc/ld.so.cache"]
    write_legacy_archive(p, [layer(("d", "etc"), ("f", "etc/os-release", 100)), layer(*pip3_only)],
                         tags=("test/attr2:1",), history=history(["", "RUN /bin/sh -c apt-get install -y pip3 # buildkit"]))
    a2 = ll.load(f"docker-archive:{p}")
    plan = ll.plan_bases({"a1": "FROM scratch\nRUN apt-get install -y pip3 less\n",
                          "a2": "FROM scratch\nRUN apt-get install -y pip3\n"}, images={"a1": apt_image, "a2": a2})
    s = plan.savings
    a1 = s[(s["scope"] == "app") & (s["image"] == "a1")].iloc[0]
    assert int(a1["pulled_with_bases_bytes"]) == 300 + len(LESS_LIST) + 50 + len(STATUS) + 200
    assert any("estimated sizes:" in n and "[a1: apt: less]" in n for n in plan.notes), plan.notes
    t = plan.trie.set_index("step")
    less = t.loc[[k for k in t.index if k.endswith("install -y less && apt-get clean && rm -rf /var/lib/apt/lists/*")][0]]
    shared = t.loc[[k for k in t.index if "install -y pip3 &&" in k][0]]
    assert bool(less["size_estimated"]) and not bool(shared["size_estimated"])  # pip3: a2 measured it


def test_scratch_step_joined_with_its_cleanup_is_sized_by_the_merged_layer(tmp_path):
    """a writes a 30000-byte scratch file and a 64-byte checksum, deletes the scratch a step
    later: the plan writes one RUN whose layer holds only the checksum (64 bytes)."""
    p = tmp_path / "a.tar"
    cmds = ["", "RUN /bin/sh -c apt-get install -y x # buildkit",
            "RUN /bin/sh -c dd if=/dev/zero of=/tmp/big bs=1000 count=30 && sha256sum /tmp/big > /tmp/sum # buildkit",
            "RUN /bin/sh -c rm /tmp/big # buildkit"]
    write_legacy_archive(p, [layer(("f", "etc/os", 100)), layer(("f", "usr/x", 500)),
                             layer(("d", "tmp"), ("f", "tmp/big", 30000), ("f", "tmp/sum", 64)),
                             layer(("wh", "tmp/big"))], tags=("test/scratch:1",), history=history(cmds))
    a = ("FROM scratch\nRUN apt-get install -y x\n"
         "RUN dd if=/dev/zero of=/tmp/big bs=1000 count=30 && sha256sum /tmp/big > /tmp/sum\nRUN rm /tmp/big\n")
    plan = ll.plan_bases({"a": a, "b": "FROM scratch\nRUN apt-get install -y x\n"},
                         images={"a": ll.load(f"docker-archive:{p}")})
    assert plan.dockerfiles["a"] == ("FROM f1\nRUN dd if=/dev/zero of=/tmp/big bs=1000 count=30 && "
                                     "sha256sum /tmp/big > /tmp/sum && rm /tmp/big\n")
    row = plan.savings[(plan.savings["scope"] == "app") & (plan.savings["image"] == "a")].iloc[0]
    assert int(row["pulled_with_bases_bytes"]) == 64
