"""Responsible generation: AI-generated labels, text watermark, content and PII filters, inspection."""
