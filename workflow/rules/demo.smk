rule toy_demo:
    """Joint LSTM / BNLSTM / DDLSTM training on the two-domain toy problem (pipeline.demo)."""
    output:
        table="results/demo/joint_toy.md",
    log:
        "results/logs/toy_demo.log",
    benchmark:
        "results/benchmarks/toy_demo.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=2000,
        runtime=15,
    shell:
        "python -m pipeline.demo --output {output.table} > {log} 2>&1"
