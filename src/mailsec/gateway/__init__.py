"""The mail gateway: SMTP receive → durable queue → scan/store → dispatch (deliver, quarantine), with retries."""
