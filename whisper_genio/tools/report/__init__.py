"""Diagnosis report of a quantization scheme: HTML with plots, plus JSON.

    from whisper_genio.tools.report import build_report
    build_report("bundle/", "a8w8", "report/", calibration=windows, evaluation=eval_windows)

See ``diagnose.py`` for what is measured and ``html.py`` for the page.
"""

from .diagnose import build_report, diagnose

__all__ = ["build_report", "diagnose"]
