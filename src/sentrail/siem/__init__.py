"""SIEM export: findings and tool calls (with their policy verdict) as OCSF 1.5, Splunk HEC
events, CEF lines or Elastic Common Schema documents, written to a stream or forwarded to
Splunk HEC in bounded batches. See docs/siem.md.

Importing this package imports nothing optional; ``sentrail.siem.forward.HecSink`` needs
httpx (the ``[alerts]`` extra).
"""
