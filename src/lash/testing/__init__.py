"""Test support that ships with the package: the store conformance kit, scripted providers."""
