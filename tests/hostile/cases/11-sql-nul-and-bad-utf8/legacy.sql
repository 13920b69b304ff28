CREATE TABLE people (id TEXT, name TEXT, mail TEXT);
INSERT INTO people VALUES ('1', '张三', 'a@x.org');
INSERT INTO people VALUES ('2', 'B' || char(0) || 'b', 'b@x.org');
INSERT INTO people VALUES ('3', CAST(x'c0ee41' AS TEXT), 'c@x.org');
