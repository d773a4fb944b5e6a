"""Mailbox backends behind one protocol (`base.MailboxBackend`): IMAP (any server; tested on Dovecot), Microsoft
Graph and Gmail. They find a delivered message in a recipient's mailbox and move, purge or restore it."""
