# The DDLSTM workflow lives in workflow/Snakefile (the layout the Snakemake workflow catalog expects); this
# file runs it from the repository's root. An included file's rules do not become the default target,
# so `default` names workflow/Snakefile's `all` as the one a bare `snakemake` makes.
include: "workflow/Snakefile"


rule default:
    default_target: True
    input:
        rules.all.input,
