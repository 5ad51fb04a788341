"""公的個人認証 (JPKI): the CAs, signing and authentication certificates, CRL and OCSP."""
