rule synthetic_data:
    """Write the embedded synthetic kitchen datasets (default config only)."""
    output:
        manifest=f"{SYNTHETIC['output']}/manifest.json",
    log:
        "results/logs/synthetic_data.log",
    benchmark:
        "results/benchmarks/synthetic_data.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        folder=output_folder,
        names=" ".join(name for name in DATASETS if name in SYNTHETIC_NAMES),
        options=options(SYNTHETIC, skip=("generate", "output")),
    shell:
        "python -m pipeline synthetic --output {params.folder} --datasets {params.names} {params.options} > {log} 2>&1"


rule frames:
    """Decode a dataset's videos into frame stores aligned with its labels."""
    input:
        dataset_files,
    output:
        report="results/frames/{dataset}/report.csv",
    log:
        "results/logs/frames/{dataset}.log",
    benchmark:
        "results/benchmarks/frames/{dataset}.tsv"
    wildcard_constraints:
        dataset=one_of(VIDEO_DATASETS),
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        spec=dataset_spec,
        options=frames_options(),
    shell:
        "python -m pipeline frames --dataset {params.spec:q} --output-dir results/frames/{wildcards.dataset} "
        "--report {output.report} {params.options} > {log} 2>&1"


rule check_features:
    """Check a dataset's precomputed feature arrays (present, one dimension, finite, long enough) before any training."""
    input:
        dataset_files,
    output:
        report="results/precomputed/{dataset}/report.csv",
    log:
        "results/logs/check_features/{dataset}.log",
    benchmark:
        "results/benchmarks/check_features/{dataset}.tsv"
    wildcard_constraints:
        dataset=one_of(FEATURE_DATASETS),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        spec=dataset_spec,
        fps=config["frames"]["fps"],
        options=tolerance_options(),
    shell:
        "python -m pipeline check-features --dataset {params.spec:q} --fps {params.fps} --report {output.report} "
        "{params.options} > {log} 2>&1"
