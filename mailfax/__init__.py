"""mailfax: an email-to-fax gateway (SMTP in, FAX.PLUS out, delivery receipts back)."""

__version__ = "0.1.0"
