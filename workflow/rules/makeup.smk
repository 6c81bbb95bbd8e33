# Beyond the paper (its future work B): the joint runs of every pair trained once more with the adaptive
# batch makeup (recurrent.domain_share: adaptive, pipeline/training/makeup.py) beside Table 1's runs with
# the fixed share, and the table and figure that compare them. Only when the config sets
# adaptive_share_comparison: true; otherwise this file adds no job.
use rule train as train_adaptive with:
    output:
        metrics="results/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-adaptive/metrics.csv",
        predictions="results/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-adaptive/predictions.npz",
        alphas="results/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-adaptive/alphas.csv",
        shares="results/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-adaptive/shares.csv",
    log:
        "results/logs/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-adaptive.log",
    benchmark:
        "results/benchmarks/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-adaptive.tsv"
    wildcard_constraints:
        protocol="joint",
    params:
        folder=output_folder,
        options=adaptive_run_options,


use rule train_adaptive as train_adaptive_seed with:
    output:
        metrics="results/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-adaptive-s{seed}/metrics.csv",
        predictions="results/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-adaptive-s{seed}/predictions.npz",
        alphas="results/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-adaptive-s{seed}/alphas.csv",
        shares="results/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-adaptive-s{seed}/shares.csv",
    log:
        "results/logs/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-adaptive-s{seed}.log",
    benchmark:
        "results/benchmarks/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-adaptive-s{seed}.tsv"


rule adaptive_share:
    """Fixed against adaptive batch makeup: the table with paired 95% intervals and the shares' figure."""
    input:
        metrics=fixed_runs() + adaptive_runs("metrics.csv"),
        shares=adaptive_runs("shares.csv"),
    output:
        report(
            "results/tables/adaptive_share.csv",
            caption="../report/adaptive_share.rst",
            category="Adaptive batch makeup",
        ),
        expand("results/tables/adaptive_share.{ext}", ext=("md", "tex")),
        report(
            "results/figures/adaptive_share.png",
            caption="../report/adaptive_share.rst",
            category="Adaptive batch makeup",
        ),
    log:
        "results/logs/adaptive_share.log",
    benchmark:
        "results/benchmarks/adaptive_share.tsv"
    conda:
        "../envs/ddlstm.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        pairs=" ".join(PAIR_NAMES),
        depth=TABLE1_DEPTH,
        fixed=REC.get("domain_share", 0.5),
        readings=readings(),
    shell:
        "python -m pipeline adaptive-share --metrics {input.metrics} --shares {input.shares} --pairs {params.pairs} "
        "--depth {params.depth} --fixed-share {params.fixed} --readings {params.readings:q} "
        "--table results/tables/adaptive_share --figure results/figures/adaptive_share.png > {log} 2>&1"
