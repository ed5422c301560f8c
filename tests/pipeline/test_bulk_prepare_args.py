"""Pipeline parameters reach BULK_PREPARE's real command line: the module's `script:` (not its stub) run by Nextflow
with the pipeline's own configuration (nextflow.config, conf/modules.config's ext.args), against a stand-in `scfan`
that records the arguments it is given, so no data is needed (one Nextflow start, about 20 s)."""

from __future__ import annotations

import subprocess

import pytest
from nfrun import NEXTFLOW, REPO, _env

pytestmark = pytest.mark.pipeline

WRAPPER = f"""\
include {{ BULK_PREPARE }} from '{REPO}/modules/local/bulk_prepare/main'

workflow {{
    def d = file("${{projectDir}}/inputs")
    BULK_PREPARE(Channel.of([[id: 'lineA'], ['CTCF'], [''], [d.resolve('CTCF.bed')], d.resolve('atac.bw')]),
                 d.resolve('genome.fa'), d.resolve('genome.fa.fai'), d.resolve('mappability.bw'), [])
}}
"""

# first on the PATH of Nextflow and so of its local tasks: `scfan bulk prepare` writes its arguments, one a line, as
# its prepare.json (published under bulk/<line>/prepare/), `scfan versions` a versions.yml
FAKE_SCFAN = """\
#!/bin/bash
if [ "$1 $2" = "bulk prepare" ]; then
    mkdir -p prepare && touch prepare/windows.parquet && printf '%s\\n' "$@" > prepare/prepare.json
elif [ "$1" = versions ]; then
    printf '"%s":\\n    scfan: "0"\\n' "$3"
else
    exit 1
fi
"""


def prepare_argv(tmp_path, *args: str) -> list[str]:
    """The arguments `scfan bulk prepare` gets in a BULK_PREPARE task run with these pipeline arguments."""
    (tmp_path / "main.nf").write_text(WRAPPER)
    fake = tmp_path / "fakebin" / "scfan"
    fake.parent.mkdir()
    fake.write_text(FAKE_SCFAN)
    fake.chmod(0o755)
    env = _env()
    env["PATH"] = f"{fake.parent}:{env['PATH']}"
    (tmp_path / "inputs").mkdir()
    for name in ("CTCF.bed", "atac.bw", "genome.fa", "genome.fa.fai", "mappability.bw"):
        (tmp_path / "inputs" / name).write_text("")
    outdir = tmp_path / "results"
    # -profile test: its caps for 2 cores (BULK_PREPARE's process_medium asks for 6 CPUs)
    proc = subprocess.run([str(NEXTFLOW), "run", str(tmp_path / "main.nf"), "-c", str(REPO / "nextflow.config"),
                           "-profile", "test", "--outdir", str(outdir), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return (outdir / "bulk" / "lineA" / "prepare" / "prepare.json").read_text().splitlines()


def test_bulk_chroms_and_the_splits_reach_scfan_bulk_prepare(tmp_path):
    argv = prepare_argv(tmp_path, "--bulk_chroms", "primary", "--valid_chroms", "chr2", "--test_chroms", "chr1,chr3")
    assert argv[:2] == ["bulk", "prepare"], argv

    def value(option: str) -> str:
        assert argv.count(option) == 1, (option, argv)
        return argv[argv.index(option) + 1]

    assert value("--chroms") == "primary"
    assert (value("--valid-chroms"), value("--test-chroms")) == ("chr2", "chr1,chr3")
    assert (value("--line"), value("--outdir")) == ("lineA", "prepare")
