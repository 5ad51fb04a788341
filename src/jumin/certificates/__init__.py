"""Certificates: 住民票の写し and its kin as signed PDFs with QR verification."""
