"""salad: contrastive latent spaces + CATHODE for diphoton anomaly detection.

snakemake --cores all                         # laptop default, config/config.yaml
snakemake --cores all --configfile my.yaml    # your own config
snakemake --profile workflow/profiles/slurm   # every job on a SLURM cluster
"""

from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


# The laptop default, unless --configfile/--config gave a configuration (a given file replaces
# the default rather than being merged into it, so no default setup leaks into a user's run).
if not config:

    configfile: f"{workflow.basedir}/config/config.yaml"


include: "rules/common.smk"
include: "rules/generate.smk"
include: "rules/preselect.smk"
include: "rules/encoder.smk"
include: "rules/cathode.smk"
include: "rules/signal_agnostic.smk"
include: "rules/comparison.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets,
