"""SMTP intake: the hardened aiosmtpd server and the handler that decides each reply."""
