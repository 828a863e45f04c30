"""Reports of a simulated plan: JSON, Gantt chart, memory curves, Chrome/Perfetto trace. The plots
(`report.plots`, matplotlib) are imported where they are drawn."""

from monet_opt.report.evaluation import format_result, result_to_dict, write_reports
from monet_opt.report.trace import trace_events

__all__ = ["format_result", "result_to_dict", "trace_events", "write_reports"]
