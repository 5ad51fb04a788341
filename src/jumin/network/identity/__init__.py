"""The national identity store (本人確認情報) and the inbox that feeds it."""
