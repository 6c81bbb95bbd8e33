rule toy:
    """Joint LSTM / BNLSTM / DDLSTM training on the two-domain toy problem of the model library (pipeline.toy)."""
    output:
        table="results/toy/joint_toy.md",
    log:
        "results/logs/toy.log",
    benchmark:
        "results/benchmarks/toy.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=2000,
        runtime=15,
    shell:
        "python -m pipeline.toy --output {output.table} > {log} 2>&1"
