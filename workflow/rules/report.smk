# The HTML report: `snakemake --report report.html` collects every report() output.


report: "../../report/workflow.rst"
