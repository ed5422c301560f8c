"""Pipeline parameters reach the real command lines of BULK_PREPARE and SC_PREDICT: each module's `script:`
(not its stub) run by Nextflow with the pipeline's own configuration (nextflow.config, conf/modules.config's
ext.args), against a stand-in `scfan` that records the arguments it is given, so no data is needed (one
Nextflow start each, about 20 s)."""

from __future__ import annotations

import subprocess

import pytest
from nfrun import NEXTFLOW, REPO, _env

pytestmark = pytest.mark.pipeline

# Nextflow wrappers: plain strings with @REPO@ replaced (no f-string: nf-core's template_strings lint reads doubled
# braces as Jinja)
WRAPPER = """\
include { BULK_PREPARE } from '@REPO@/modules/local/bulk_prepare/main'

workflow {
    def d = file("${projectDir}/inputs")
    BULK_PREPARE(Channel.of([[id: 'lineA'], ['CTCF'], [''], [d.resolve('CTCF.bed')], d.resolve('atac.bw')]),
                 d.resolve('genome.fa'), d.resolve('genome.fa.fai'), d.resolve('mappability.bw'), [])
}
""".replace("@REPO@", str(REPO))

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


def run_module(tmp_path, wrapper: str, fake_scfan: str, inputs: tuple[str, ...], *args: str) -> str:
    """Run ``wrapper`` (one module) with the pipeline's configuration, ``-profile test`` (its caps for 2 cores) and
    these pipeline arguments, ``fake_scfan`` first on the PATH and empty ``inputs/<name>`` files; returns stdout."""
    (tmp_path / "main.nf").write_text(wrapper)
    fake = tmp_path / "fakebin" / "scfan"
    fake.parent.mkdir()
    fake.write_text(fake_scfan)
    fake.chmod(0o755)
    env = _env()
    env["PATH"] = f"{fake.parent}:{env['PATH']}"
    (tmp_path / "inputs").mkdir()
    for name in inputs:
        (tmp_path / "inputs" / name).write_text("")
    proc = subprocess.run([str(NEXTFLOW), "run", str(tmp_path / "main.nf"), "-c", str(REPO / "nextflow.config"),
                           "-profile", "test", "--outdir", str(tmp_path / "results"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return proc.stdout


def value(argv: list[str], option: str) -> str:
    """The one value of ``option`` on a command line."""
    assert argv.count(option) == 1, (option, argv)
    return argv[argv.index(option) + 1]


def prepare_argv(tmp_path, *args: str) -> list[str]:
    """The arguments `scfan bulk prepare` gets in a BULK_PREPARE task run with these pipeline arguments."""
    run_module(tmp_path, WRAPPER, FAKE_SCFAN, ("CTCF.bed", "atac.bw", "genome.fa", "genome.fa.fai", "mappability.bw"),
               *args)
    return (tmp_path / "results" / "bulk" / "lineA" / "prepare" / "prepare.json").read_text().splitlines()

def test_bulk_chroms_and_the_splits_reach_scfan_bulk_prepare(tmp_path):
    argv = prepare_argv(tmp_path, "--bulk_chroms", "primary", "--valid_chroms", "chr2", "--test_chroms", "chr1,chr3")
    assert argv[:2] == ["bulk", "prepare"], argv
    assert value(argv, "--chroms") == "primary"
    assert (value(argv, "--valid-chroms"), value(argv, "--test-chroms")) == ("chr2", "chr1,chr3")
    assert (value(argv, "--line"), value(argv, "--outdir")) == ("lineA", "prepare")


SC_WRAPPER = """\
include { SC_PREDICT } from '@REPO@/modules/local/sc_predict/main'

workflow {
    def d = file("${projectDir}/inputs")
    SC_PREDICT(Channel.of(['1/1', d.resolve('cells_nn.h5ad'), ['s1'], [d.resolve('s1.fragments.tsv.gz')]]),
               Channel.of([['lineA'], [d.resolve('model.pt')]]).first(),
               d.resolve('genome.fa'), d.resolve('genome.fa.fai'), d.resolve('mappability.bw'))
    SC_PREDICT.out.activity.map { f -> 'ARGV ' + f.text.readLines().join(' ') }.view()
}
""".replace("@REPO@", str(REPO))

# A stand-in `scfan`: the commands named in @BRANCHES@ write their arguments, one a line, where the test reads them;
# `scfan versions` answers as the real one; anything else fails.
FAKE_TEMPLATE = """\
#!/bin/bash
out=""; prev=""
for a in "$@"; do [ "$prev" = "--out" ] && out="$a"; prev="$a"; done
[ -d "$out" ] && out="$out/activity_shard_1_of_1.h5ad"   # `--out FOLDER`: the real one names the file itself
if false; then :
@BRANCHES@
elif [ "$1" = versions ]; then
    printf '"%s":\\n    scfan: "0"\\n' "$3"
else
    exit 1
fi
"""


def fake_scfan(branches: str) -> str:
    return FAKE_TEMPLATE.replace("@BRANCHES@", branches.rstrip("\n"))


# `scfan sc predict` writes its arguments, one a line, into the file it is told to --out
FAKE_SC = fake_scfan("""\
elif [ "$1 $2" = "sc predict" ]; then
    printf '%s\\n' "$@" > "$out"
""")


def predict_argv(tmp_path, *args: str) -> list[str]:
    """The arguments `scfan sc predict` gets in an SC_PREDICT task run with these pipeline arguments."""
    out = run_module(tmp_path, SC_WRAPPER, FAKE_SC, ("cells_nn.h5ad", "s1.fragments.tsv.gz", "model.pt", "genome.fa",
                                                     "genome.fa.fai", "mappability.bw"), *args)
    (line,) = [ln for ln in out.splitlines() if ln.startswith("ARGV ")]
    return line.split()[1:]

def test_the_window_share_and_the_seed_reach_scfan_sc_predict(tmp_path):
    argv = predict_argv(tmp_path, "--infer_window_share", "0.25", "--seed", "11",
                        "--infer_window_estimator", "regression")
    assert argv[:2] == ["sc", "predict"], argv

    assert (value(argv, "--window-share"), value(argv, "--window-seed")) == ("0.25", "11")
    assert value(argv, "--window-estimator") == "regression"
    (tmp_path / "default").mkdir()
    assert value(predict_argv(tmp_path / "default"), "--window-estimator") == "mean"
    assert value(argv, "--shard") == "1/1" and value(argv, "--model") == "lineA=models/model.pt"



INTERPRET_WRAPPER = """\
include { SC_INTERPRET } from '@REPO@/modules/local/sc_interpret/main'
include { REPORT } from '@REPO@/modules/local/report/main'
include { REPORT as REPORT_WITHOUT } from '@REPO@/modules/local/report/main'

workflow {
    def d = file("${projectDir}/inputs")
    def analyses = Channel.value([['chromatin'], [d.resolve('chromatin')]])
    def none = Channel.value([[], []])
    SC_INTERPRET(Channel.of([[id: 'chromatin'], d.resolve('clusters.tsv'), d.resolve('differential_tfs.tsv')]),
                 d.resolve('cells_nn.h5ad'), Channel.value([['lineA'], [d.resolve('model.pt')]]),
                 Channel.value([['s1'], [d.resolve('s1.fragments.tsv.gz')]]), d.resolve('genome.fa'),
                 d.resolve('genome.fa.fai'), d.resolve('mappability.bw'))
    SC_INTERPRET.out.summary.map { _meta, f -> 'SC_INTERPRET ' + f.text.readLines().join(' ') }.view()
    // as workflows/scfan.nf hands it on: [ interpret/ ], or [] when the step did not run
    REPORT(analyses, [], none, none, SC_INTERPRET.out.results.map { _meta, dir -> dir }.collect().ifEmpty([]),
           d.resolve('cells_nn.h5ad'), d.resolve('activity.h5ad'), [d.resolve('versions.yml')],
           d.resolve('params.json'), [])
    REPORT.out.report.map { f -> 'REPORT ' + f.text.readLines().join(' ') }.view()
    REPORT_WITHOUT(analyses, [], none, none, Channel.empty().collect().ifEmpty([]), d.resolve('cells_nn.h5ad'),
                   d.resolve('activity.h5ad'), [d.resolve('versions.yml')], d.resolve('params.json'), [])
    REPORT_WITHOUT.out.report.map { f -> 'WITHOUT ' + f.text.readLines().join(' ') }.view()
}
""".replace("@REPO@", str(REPO))

# `scfan sc interpret` writes its arguments, one a line, as interpret/clusters.tsv; `scfan report` into its --out
FAKE_INTERPRET = fake_scfan("""\
elif [ "$1 $2" = "sc interpret" ]; then
    mkdir -p interpret && printf '%s\\n' "$@" > interpret/clusters.tsv
elif [ "$1" = report ]; then
    printf '%s\\n' "$@" > "$out"
""")


def test_sc_interpret_gets_its_parameters_and_the_report_its_folder(tmp_path):
    """SC_INTERPRET: the clustering's differential TFs, --sc_interpret_* and the seed reach `scfan sc interpret`;
    REPORT: its folder reaches `scfan report --sc-interpret`, and no such option when the step did not run."""
    out = run_module(tmp_path, INTERPRET_WRAPPER, FAKE_INTERPRET,
                     ("clusters.tsv", "differential_tfs.tsv", "cells_nn.h5ad", "model.pt", "s1.fragments.tsv.gz",
                      "genome.fa", "genome.fa.fai", "mappability.bw", "chromatin", "activity.h5ad", "versions.yml",
                      "params.json"),
                     "--sc_interpret_top_tfs", "3", "--sc_interpret_n_windows", "7", "--sc_interpret_max_candidates",
                     "50", "--seed", "11")
    lines = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines() if ln.split()[:1] in (["SC_INTERPRET"],
                                                                                           ["REPORT"], ["WITHOUT"])}
    argv = lines["SC_INTERPRET"]
    assert argv[:2] == ["sc", "interpret"], argv
    assert (value(argv, "--top-tfs"), value(argv, "--n-windows"), value(argv, "--max-candidates")) == ("3", "7", "50")
    assert (value(argv, "--seed"), value(argv, "--differential")) == ("11", "differential_tfs.tsv")
    assert value(argv, "--model") == "lineA=models/model.pt" and value(argv, "--out-dir") == "interpret"
    assert value(argv, "--threads") == "2"
    assert value(lines["REPORT"], "--sc-interpret") == "sc_interpret/interpret"
    assert "--sc-interpret" not in lines["WITHOUT"] and lines["WITHOUT"][0] == "report"
