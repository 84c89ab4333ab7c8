"""Webhook notifications (placeholder: filled in by the notifications work)."""
