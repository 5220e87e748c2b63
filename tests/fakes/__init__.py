"""Fakes of outside services that tests run against over loopback."""
