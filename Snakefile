# oncoflow: multimodal oncology outcome prediction.
#
# Output tree (see README):
#   resources/demo/<study>/...                      built-in synthetic demo cohort
#   results/qc/<study>/cohort_report.json           validation of one study's cohort
#   results/qc/cohort_report.json                   all studies together
#   results/converted/<patient>/<tp>/<stem>.nii.gz  converted images (+ .json sidecar, _mask.nii.gz)
#   logs/<stage>/...  and  logs/benchmarks/<stage>/...  one per job, same relative paths


from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/import_dicom.smk"
include: "rules/validate.smk"
include: "rules/convert.smk"
include: "rules/splits.smk"
include: "rules/nnunet.smk"
include: "rules/lesions.smk"
include: "rules/features.smk"
include: "rules/harmonize.smk"
include: "rules/survival.smk"
include: "rules/deep.smk"
include: "rules/baselines.smk"
include: "rules/synthesis.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
include: "rules/apply.smk"


rule all:
    default_target: True
    input:
        "results/qc/cohort_report.json",
        all_converted(),
        all_lesions(),
        all_features(),
        all_nnunet(),
        all_survival_models(),
        all_deep_models(),
        all_evaluations(),
        all_ddpm(),
        "results/report/index.html",


rule qc:
    input:
        "results/qc/cohort_report.json",


rule convert:
    input:
        all_converted(),


rule lesions:
    input:
        all_lesions(),


rule nnunet:
    input:
        all_nnunet(),


rule features:
    input:
        all_features(),


rule deep:
    input:
        all_deep_models(),


rule evaluate_all:
    input:
        all_evaluations(),


rule apply:
    input:
        all_applied,
