rule boundary:
    """Train the boundary LSTM on one split; write the logits with its per-frame output added."""
    input:
        logits="results/features/{dataset}/split{split}/logits.h5",
    output:
        inputs="results/boundary/{dataset}/split{split}/inputs.h5",
    log:
        "results/logs/boundary/{dataset}/split{split}.log",
    benchmark:
        "results/benchmarks/boundary/{dataset}/split{split}.tsv"
    conda:
        CONDA_ENV
    threads: 1  # small recurrent models: one thread is as fast as two, so two jobs run at once
    resources:
        mem_mb=4000,
        runtime=240,
        gpu=1,
    params:
        options=options(config["boundary"]),
    shell:
        "python -m pipeline boundary --restart-on-change --logits {input.logits} --output {output.inputs} "
        "--work-dir results/boundary/{wildcards.dataset}/split{wildcards.split}/work {params.options} > {log} 2>&1"


rule train:
    """One recurrent model, one protocol, one pair and split: train, then evaluate every test frame."""
    input:
        run_inputs,
    output:
        metrics="results/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}/metrics.csv",
        predictions="results/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}/predictions.npz",
        alphas="results/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}/alphas.csv",
    log:
        "results/logs/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}.log",
    benchmark:
        "results/benchmarks/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}.tsv"
    conda:
        CONDA_ENV
    threads: 1  # small recurrent models: one thread is as fast as two, so two jobs run at once
    resources:
        mem_mb=8000,
        runtime=1440,
        gpu=1,
    params:
        folder=output_folder,
        options=run_options,
    shell:
        "python -m pipeline train --restart-on-change --inputs {input} --output-dir {params.folder} --model {wildcards.model} "
        "--layers {wildcards.depth} {params.options} > {log} 2>&1"


use rule train as train_seed with:
    output:
        metrics="results/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-s{seed}/metrics.csv",
        predictions="results/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-s{seed}/predictions.npz",
        alphas="results/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-s{seed}/alphas.csv",
    log:
        "results/logs/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-s{seed}.log",
    benchmark:
        "results/benchmarks/recurrent/{d1}+{d2}/split{split}/{protocol}-{model}-L{depth}-s{seed}.tsv"


rule train_group:
    """One recurrent model trained jointly on a group of three or more datasets (one DDBN domain each), one split."""
    input:
        run_inputs,
    output:
        metrics="results/groups/{group}/split{split}/{protocol}-{model}-L{depth}/metrics.csv",
        predictions="results/groups/{group}/split{split}/{protocol}-{model}-L{depth}/predictions.npz",
        alphas="results/groups/{group}/split{split}/{protocol}-{model}-L{depth}/alphas.csv",
    log:
        "results/logs/groups/{group}/split{split}/{protocol}-{model}-L{depth}.log",
    benchmark:
        "results/benchmarks/groups/{group}/split{split}/{protocol}-{model}-L{depth}.tsv"
    wildcard_constraints:
        protocol="joint",
    conda:
        CONDA_ENV
    threads: 1  # small recurrent models: one thread is as fast as two, so two jobs run at once
    resources:
        mem_mb=8000,
        runtime=1440,
        gpu=1,
    params:
        folder=output_folder,
        options=run_options,
    shell:
        "python -m pipeline train --restart-on-change --inputs {input} --output-dir {params.folder} --model {wildcards.model} "
        "--layers {wildcards.depth} {params.options} > {log} 2>&1"


use rule train_group as train_group_seed with:
    output:
        metrics="results/groups/{group}/split{split}/{protocol}-{model}-L{depth}-s{seed}/metrics.csv",
        predictions="results/groups/{group}/split{split}/{protocol}-{model}-L{depth}-s{seed}/predictions.npz",
        alphas="results/groups/{group}/split{split}/{protocol}-{model}-L{depth}-s{seed}/alphas.csv",
    log:
        "results/logs/groups/{group}/split{split}/{protocol}-{model}-L{depth}-s{seed}.log",
    benchmark:
        "results/benchmarks/groups/{group}/split{split}/{protocol}-{model}-L{depth}-s{seed}.tsv"


rule alpha_init:
    """Joint DDLSTM from another initial alpha, for Fig. 7's convergence panel."""
    input:
        "results/boundary/{d1}/split{split}/inputs.h5",
        "results/boundary/{d2}/split{split}/inputs.h5",
    output:
        alphas="results/alpha_init/{d1}+{d2}/split{split}/ddlstm-L{depth}-a{alpha}/alphas.csv",
    log:
        "results/logs/alpha_init/{d1}+{d2}/split{split}/ddlstm-L{depth}-a{alpha}.log",
    benchmark:
        "results/benchmarks/alpha_init/{d1}+{d2}/split{split}/ddlstm-L{depth}-a{alpha}.tsv"
    conda:
        CONDA_ENV
    threads: 1  # small recurrent models: one thread is as fast as two, so two jobs run at once
    resources:
        mem_mb=8000,
        runtime=1440,
        gpu=1,
    params:
        folder=output_folder,
        options=alpha_init_options,
    shell:
        "python -m pipeline train --restart-on-change --inputs {input} --output-dir {params.folder} --model ddlstm "
        "--layers {wildcards.depth} {params.options} > {log} 2>&1"


rule export:
    """A finished run as one bundle (frame classifiers, boundary models, the recurrent model) for `ddlstm predict` / `stream`."""
    input:
        unpack(export_inputs),
    output:
        bundle="results/models/{names}/split{split}/{run}.ddlstm",
    log:
        "results/logs/export/{names}/split{split}/{run}.log",
    benchmark:
        "results/benchmarks/export/{names}/split{split}/{run}.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        options=export_options,
    shell:
        "python -m pipeline export --inputs {input.inputs} --frame-classifiers {input.classifiers} "
        "{params.options} --output {output.bundle} > {log} 2>&1"
