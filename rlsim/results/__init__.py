"""Turn a run's records into files people open: summary JSON, parquet, PNG, Chrome trace."""

from rlsim.results.result import RunResult
from rlsim.results.writers import write_chrome_trace, write_outputs, write_running_batch_png, write_summary_json

__all__ = ["RunResult", "write_outputs", "write_summary_json", "write_chrome_trace", "write_running_batch_png"]
