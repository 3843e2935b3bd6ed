-- Version 2: a finding keeps the exact status it is about (its errors are counted by it);
-- records that arrived after their window closed are counted per window, and a
-- finding counts how often it was reopened (a flapping signal shows as many reopens).
ALTER TABLE windows ADD COLUMN late BIGINT NOT NULL DEFAULT 0;
ALTER TABLE findings ADD COLUMN reopened BIGINT NOT NULL DEFAULT 0;
ALTER TABLE findings ADD COLUMN status BIGINT;
