FEATURE_OPTIONS = options(config["features"], skip=("extract_batch_size", "joint"))
# Extraction takes the precision and the loader processes of fine-tuning's section (unset: the
# step's defaults, fp32 and in-process loading on the CPU, bf16 and worker processes on CUDA).
EXTRACT_OPTIONS = options(
    {key: config["features"][key] for key in ("precision", "workers") if key in config["features"]}
)


rule finetune:
    """Fine-tune the frame classifier on one split's training frames."""
    input:
        frames="results/frames/{dataset}/report.csv",
        weights=initial_weights,
    output:
        model="results/features/{dataset}/split{split}/finetune/model.pt",
        metrics="results/features/{dataset}/split{split}/finetune/metrics.csv",
    log:
        "results/logs/finetune/{dataset}/split{split}.log",
    benchmark:
        "results/benchmarks/finetune/{dataset}/split{split}.tsv"
    wildcard_constraints:
        dataset=one_of(VIDEO_DATASETS),
    conda:
        CONDA_ENV
    threads: FRAME_NETWORK_THREADS
    resources:
        mem_mb=8000,
        runtime=720,
        gpu=1,
    params:
        spec=dataset_spec,
        store=config["frames"]["store"],
        fps=config["frames"]["fps"],
        options=FEATURE_OPTIONS,
    shell:
        "python -m pipeline finetune --restart-on-change --dataset {params.spec:q} --split {wildcards.split} "
        "--frames results/frames/{wildcards.dataset} --store {params.store} --fps {params.fps} "
        "--output-dir results/features/{wildcards.dataset}/split{wildcards.split}/finetune {params.options} > {log} 2>&1"


rule extract:
    """Logits of every frame of one split (train and test videos) to HDF5."""
    input:
        frames="results/frames/{dataset}/report.csv",
        model="results/features/{dataset}/split{split}/finetune/model.pt",
    output:
        logits="results/features/{dataset}/split{split}/logits.h5",
    log:
        "results/logs/extract/{dataset}/split{split}.log",
    benchmark:
        "results/benchmarks/extract/{dataset}/split{split}.tsv"
    wildcard_constraints:
        dataset=one_of(VIDEO_DATASETS),
    conda:
        CONDA_ENV
    threads: FRAME_NETWORK_THREADS
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=1,
    params:
        spec=dataset_spec,
        store=config["frames"]["store"],
        fps=config["frames"]["fps"],
        batch=config["features"].get("extract_batch_size", 64),
        options=EXTRACT_OPTIONS,
    shell:
        "python -m pipeline extract --dataset {params.spec:q} --split {wildcards.split} "
        "--frames results/frames/{wildcards.dataset} --store {params.store} --fps {params.fps} "
        "--model {input.model} --output {output.logits} --batch-size {params.batch} {params.options} > {log} 2>&1"


rule linear:
    """Datasets read from features: fit the linear frame classifier on one split; logits of every frame to HDF5."""
    input:
        report="results/precomputed/{dataset}/report.csv",
    output:
        logits="results/features/{dataset}/split{split}/logits.h5",
        model="results/features/{dataset}/split{split}/linear/model.pt",
        metrics="results/features/{dataset}/split{split}/linear/metrics.json",
    log:
        "results/logs/linear/{dataset}/split{split}.log",
    benchmark:
        "results/benchmarks/linear/{dataset}/split{split}.tsv"
    wildcard_constraints:
        dataset=one_of(FEATURE_DATASETS),
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        spec=dataset_spec,
        fps=config["frames"]["fps"],
        options=" ".join(
            (
                tolerance_options(),
                options(config["classifier"], skip=("joint_steps", "joint_batch_size", "joint_lr")),
            )
        ),
    shell:
        "python -m pipeline linear --dataset {params.spec:q} --split {wildcards.split} --fps {params.fps} "
        "--output {output.logits} --work-dir results/features/{wildcards.dataset}/split{wildcards.split}/linear "
        "{params.options} > {log} 2>&1"


rule none_row:
    """Frame accuracy of the logits alone on the split's test videos (Table 1's None row)."""
    input:
        logits="results/features/{dataset}/split{split}/logits.h5",
    output:
        json="results/features/{dataset}/split{split}/none.json",
    log:
        "results/logs/none_row/{dataset}/split{split}.log",
    benchmark:
        "results/benchmarks/none_row/{dataset}/split{split}.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m pipeline none-row --logits {input.logits} --output {output.json} > {log} 2>&1"
