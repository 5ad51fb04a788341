"""The resident portal (住民ポータル): the resident's door, as web/ is the staff's."""
