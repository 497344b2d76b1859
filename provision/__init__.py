"""infprov: provision and benchmark Triton Inference Server on AWS Inferentia (Inf1)."""

__version__ = "0.1.0"
