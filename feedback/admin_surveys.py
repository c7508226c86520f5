"""Admin screens for survey invitations and responses (imported by
``feedback.admin``)."""
