"""Tests of the settings pages under /admin/."""
