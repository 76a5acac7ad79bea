"""AI-BOMs from verified lineage: CycloneDX 1.6 ML-BOM and SPDX 3.0.1 AI/Dataset/Build.

`gather_evidence` walks the store up from a model over attestations that verify and
collects what a BOM says; `cyclonedx` and `spdx3` write it in each format, built with
each format's own library (imported only when a BOM is written); `completeness` says
which fields a reviewer expects are present or missing.
"""
