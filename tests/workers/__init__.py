"""Tests of the worker loops."""
