"""Telling people and machines how runs went: metrics, Pushgateway/textfile export, webhooks."""
