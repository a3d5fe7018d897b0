-- Reserved: number 8 belongs to another branch (issue 14), which may land
-- after this one; migrations are numbered without gaps, so this one holds
-- the place and changes nothing. Whichever branch's 0008 is merged
-- replaces this file.
SELECT 1;
