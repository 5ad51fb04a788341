"""Synthetic populations of Japan for trying and measuring the register at scale."""
