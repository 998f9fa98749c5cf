"""Durable effect hosts: journal each effect once, replay its recorded outcome on a redrive.

The engine adapters live in subpackages (``lash.durable.restate``, extra
``lash-runtime[restate]``); this package itself imports nothing optional.
"""
