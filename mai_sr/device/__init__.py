"""Runners: local LiteRT, adb + benchmark_model, SyNAP simulator (filled by the devices issue)."""
