"""Jumin: Japan's Basic Resident Register (住民基本台帳) and the services built on it."""

__version__ = "0.1.0"
