rule tables:
    """Tables 1 and 2, the segmentation table and Tables 3-5 where configured, averaged over splits (CSV, Markdown, LaTeX)."""
    input:
        metrics=table_runs(),
        none=none_rows(),
    output:
        report(
            expand("results/tables/{name}.csv", name=table_names()),
            caption="../report/tables.rst",
            category="Tables",
        ),
        expand("results/tables/{name}.{ext}", name=table_names(), ext=("md", "tex")),
    log:
        "results/logs/tables.log",
    benchmark:
        "results/benchmarks/tables.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        pairs=" ".join(PAIR_NAMES),
        depths=" ".join(map(str, DEPTHS)),
        depth=TABLE1_DEPTH,
        paper="--paper" if config.get("paper_comparison", False) else "",
        tables=table_options(),
        readings=readings(),
    shell:
        "python -m pipeline tables --metrics {input.metrics} --none {input.none} --pairs {params.pairs} "
        "--depths {params.depths} --table1-depth {params.depth} {params.paper} {params.tables} --readings {params.readings:q} "
        "--output-dir results/tables "
        "> {log} 2>&1"


rule figures:
    """Figs. 5, 6 and 7."""
    input:
        **figure_inputs(),
    output:
        report(
            expand("results/figures/{name}.png", name=figure_names()),
            caption="../report/figures.rst",
            category="Figures",
        ),
    log:
        "results/logs/figures.log",
    benchmark:
        "results/benchmarks/figures.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        pairs=" ".join(PAIR_NAMES),
        depth=TABLE1_DEPTH,
    shell:
        "python -m pipeline figures --metrics {input.metrics} --none {input.none} --pairs {params.pairs} "
        "--table1-depth {params.depth} --alphas {input.alphas} --alpha-init-runs {input.inits} "
        "--strip-inputs {input.strip_inputs} --strip-finetuned {input.strip_finetuned} "
        "--strip-ddlstm {input.strip_ddlstm} --group-alphas {input.group_alphas} --output-dir results/figures > {log} 2>&1"
