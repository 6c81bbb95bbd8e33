# The joint frame classifier's rules (features.joint: true; docs/studies/joint-cnn.md); its configuration
# and input functions are in jointcnn_common.smk.


rule finetune_joint:
    """Fine-tune one dual-domain frame classifier on a pair's training frames, one split."""
    input:
        frames=["results/frames/{d1}/report.csv", "results/frames/{d2}/report.csv"],
        weights=initial_weights,
    output:
        model="results/features_joint/{d1}+{d2}/split{split}/finetune/model.pt",
        metrics="results/features_joint/{d1}+{d2}/split{split}/finetune/metrics.csv",
        alphas="results/features_joint/{d1}+{d2}/split{split}/finetune/alphas.csv",
    log:
        "results/logs/finetune_joint/{d1}+{d2}/split{split}.log",
    benchmark:
        "results/benchmarks/finetune_joint/{d1}+{d2}/split{split}.tsv"
    wildcard_constraints:
        d1=one_of(VIDEO_DATASETS),
        d2=one_of(VIDEO_DATASETS),
    conda:
        "../envs/ddlstm.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=1440,
        gpu=1,
    params:
        specs=pair_specs,
        store=config["frames"]["store"],
        fps=config["frames"]["fps"],
        folder=output_folder,
        options=JOINT_FEATURE_OPTIONS,
    shell:
        "python -m pipeline finetune-joint --restart-on-change --datasets {params.specs} --split {wildcards.split} "
        "--frames results/frames/{wildcards.d1} results/frames/{wildcards.d2} --store {params.store} "
        "--fps {params.fps} --output-dir {params.folder} {params.options} > {log} 2>&1"


rule extract_joint:
    """One dataset's logits of every frame of one split from its pair's joint classifier (its head and domain)."""
    input:
        frames="results/frames/{dataset}/report.csv",
        model="results/features_joint/{d1}+{d2}/split{split}/finetune/model.pt",
    output:
        logits="results/features_joint/{d1}+{d2}/{dataset}/split{split}/logits.h5",
    log:
        "results/logs/extract_joint/{d1}+{d2}/{dataset}/split{split}.log",
    benchmark:
        "results/benchmarks/extract_joint/{d1}+{d2}/{dataset}/split{split}.tsv"
    wildcard_constraints:
        dataset=one_of(VIDEO_DATASETS),
        d1=one_of(VIDEO_DATASETS),
        d2=one_of(VIDEO_DATASETS),
    conda:
        "../envs/ddlstm.yaml"
    threads: 2
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


rule linear_joint:
    """A pair read from features: fit the joint linear classifier on one split; both datasets' logits to HDF5."""
    input:
        reports=["results/precomputed/{d1}/report.csv", "results/precomputed/{d2}/report.csv"],
    output:
        first="results/features_joint/{d1}+{d2}/{d1}/split{split}/logits.h5",
        second="results/features_joint/{d1}+{d2}/{d2}/split{split}/logits.h5",
        model="results/features_joint/{d1}+{d2}/split{split}/linear/model.pt",
        metrics="results/features_joint/{d1}+{d2}/split{split}/linear/metrics.json",
        alphas="results/features_joint/{d1}+{d2}/split{split}/linear/alphas.csv",
    log:
        "results/logs/linear_joint/{d1}+{d2}/split{split}.log",
    benchmark:
        "results/benchmarks/linear_joint/{d1}+{d2}/split{split}.tsv"
    wildcard_constraints:
        d1=one_of(FEATURE_DATASETS),
        d2=one_of(FEATURE_DATASETS),
    conda:
        "../envs/ddlstm.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        specs=pair_specs,
        fps=config["frames"]["fps"],
        options=" ".join((tolerance_options(), JOINT_LINEAR_OPTIONS)),
    shell:
        "python -m pipeline linear-joint --datasets {params.specs} --split {wildcards.split} --fps {params.fps} "
        "--outputs {output.first} {output.second} "
        "--work-dir results/features_joint/{wildcards.d1}+{wildcards.d2}/split{wildcards.split}/linear "
        "{params.options} > {log} 2>&1"


use rule none_row as none_row_joint with:
    input:
        logits="results/features_joint/{d1}+{d2}/{dataset}/split{split}/logits.h5",
    output:
        json="results/features_joint/{d1}+{d2}/{dataset}/split{split}/none.json",
    log:
        "results/logs/none_row_joint/{d1}+{d2}/{dataset}/split{split}.log",
    benchmark:
        "results/benchmarks/none_row_joint/{d1}+{d2}/{dataset}/split{split}.tsv"


rule boundary_joint:
    """The boundary LSTM on one dataset's logits from its pair's joint classifier, one split."""
    input:
        logits="results/features_joint/{d1}+{d2}/{dataset}/split{split}/logits.h5",
    output:
        inputs="results/boundary_joint/{d1}+{d2}/{dataset}/split{split}/inputs.h5",
    log:
        "results/logs/boundary_joint/{d1}+{d2}/{dataset}/split{split}.log",
    benchmark:
        "results/benchmarks/boundary_joint/{d1}+{d2}/{dataset}/split{split}.tsv"
    conda:
        "../envs/ddlstm.yaml"
    threads: 1  # small recurrent models: one thread is as fast as two, so two jobs run at once
    resources:
        mem_mb=4000,
        runtime=240,
        gpu=1,
    params:
        folder=output_folder,
        options=options(config["boundary"]),
    shell:
        "python -m pipeline boundary --restart-on-change --logits {input.logits} --output {output.inputs} "
        "--work-dir {params.folder}/work {params.options} > {log} 2>&1"


use rule train as train_joint with:
    input:
        joint_run_inputs,
    output:
        metrics="results/recurrent_joint/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}/metrics.csv",
        predictions="results/recurrent_joint/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}/predictions.npz",
        alphas="results/recurrent_joint/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}/alphas.csv",
    log:
        "results/logs/recurrent_joint/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}.log",
    benchmark:
        "results/benchmarks/recurrent_joint/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}.tsv"


use rule train as train_joint_seed with:
    input:
        joint_run_inputs,
    output:
        metrics="results/recurrent_joint/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-s{seed}/metrics.csv",
        predictions="results/recurrent_joint/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-s{seed}/predictions.npz",
        alphas="results/recurrent_joint/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-s{seed}/alphas.csv",
    log:
        "results/logs/recurrent_joint/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-s{seed}.log",
    benchmark:
        "results/benchmarks/recurrent_joint/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-s{seed}.tsv"


rule joint_table:
    """None, Joint LSTM and Joint DDLSTM with each dataset's classifier alone and the pair's joint one."""
    input:
        **joint_table_inputs(),
    output:
        report(
            "results/tables/joint_classifier.csv",
            caption="../report/joint.rst",
            category="Tables",
        ),
        "results/tables/joint_classifier.md",
        "results/tables/joint_classifier.tex",
    log:
        "results/logs/joint_table.log",
    benchmark:
        "results/benchmarks/joint_table.tsv"
    conda:
        "../envs/ddlstm.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        pairs=" ".join("+".join(pair) for pair in JOINT_PAIRS),
        depth=TABLE1_DEPTH,
        features=" ".join(FEATURE_DATASETS),
        readings=readings(),
    shell:
        "python -m pipeline joint-table --alone-metrics {input.alone} --joint-metrics {input.joint} "
        "--alone-none {input.alone_none} --joint-none {input.joint_none} --pairs {params.pairs} "
        "--depth {params.depth} --feature-datasets {params.features} --readings {params.readings:q} "
        "--output results/tables/joint_classifier > {log} 2>&1"


rule joint_figure:
    """The joint frame classifiers' alphas per layer (the CNN's Fig. 7)."""
    input:
        alphas=joint_alphas(),
    output:
        report(
            "results/figures/joint_classifier_alphas.png",
            caption="../report/joint.rst",
            category="Figures",
        ),
    log:
        "results/logs/joint_figure.log",
    benchmark:
        "results/benchmarks/joint_figure.tsv"
    conda:
        "../envs/ddlstm.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m pipeline joint-figure --alphas {input.alphas} --output {output} > {log} 2>&1"
