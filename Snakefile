# The DDLSTM pipeline. Today the workflow holds the one stage that exists: the toy joint-training
# demo of the model library (issue 2). The data, features, recurrent training and reporting stages
# join it as their issues land.
from snakemake.utils import min_version

min_version("8.0")


include: "workflow/rules/demo.smk"


rule all:
    input:
        "results/demo/joint_toy.md",
