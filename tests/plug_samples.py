"""Sample files for the plug tests, written here (line numbers matter: the tests name them)."""

from __future__ import annotations

ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//hatd tests//EN
X-WR-CALNAME:Work
BEGIN:VTIMEZONE
TZID:Europe/London
BEGIN:STANDARD
DTSTART:19701025T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700329T010000
TZOFFSETFROM:+0000
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
UID:standup-1@hat.test
DTSTAMP:20260101T000000Z
DTSTART;TZID=Europe/London:20260105T093000
DTEND;TZID=Europe/London:20260105T094500
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10
EXDATE;TZID=Europe/London:20260112T093000
SUMMARY:Stand-up
LOCATION:Room 4\\, Floor 2
ATTENDEE;CN=Ann Lee;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED:mailto:ann@hat.t
 est
ATTENDEE;CN=Bob:mailto:bob@hat.test
ORGANIZER;CN=Ann Lee:mailto:ann@hat.test
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:Stand-up soon
TRIGGER:-PT5M
END:VALARM
END:VEVENT
BEGIN:VEVENT
UID:standup-1@hat.test
DTSTAMP:20260101T000000Z
RECURRENCE-ID;TZID=Europe/London:20260119T093000
DTSTART;TZID=Europe/London:20260119T110000
DTEND;TZID=Europe/London:20260119T111500
SUMMARY:Stand-up (moved)
LOCATION:Room 4\\, Floor 2
END:VEVENT
BEGIN:VEVENT
UID:holiday@hat.test
DTSTAMP:20260101T000000Z
DTSTART;VALUE=DATE:20260601
DTEND;VALUE=DATE:20260603
SUMMARY:Holiday
DESCRIPTION:Two days off\\nat last
CATEGORIES:PERSONAL,TRAVEL
END:VEVENT
BEGIN:VEVENT
UID:broken-time@hat.test
DTSTART:2026XX01T090000Z
SUMMARY:Broken time
END:VEVENT
BEGIN:VEVENT
UID:broken-line@hat.test
DTSTART:20260301T090000Z
this line is not a property
SUMMARY:Broken line
END:VEVENT
BEGIN:VEVENT
DTSTART:20260301T090000Z
SUMMARY:No UID
END:VEVENT
END:VCALENDAR
"""

GPX = """<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="hatd tests" xmlns="http://www.topografix.com/GPX/1/1"
     xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v1">
  <wpt lat="51.4787" lon="-0.2955">
    <ele>6.5</ele>
    <name>Kew Gardens</name>
    <sym>Park</sym>
  </wpt>
  <trk>
    <name>Morning Run</name>
    <type>running</type>
    <trkseg>
      <trkpt lat="51.5007" lon="-0.1246"><ele>11.0</ele><time>2026-01-05T07:00:00Z</time>
        <extensions><gpxtpx:TrackPointExtension><gpxtpx:hr>120</gpxtpx:hr></gpxtpx:TrackPointExtension></extensions>
      </trkpt>
      <trkpt lat="51.5010" lon="-0.1250"><ele>11.5</ele><time>2026-01-05T07:00:05Z</time></trkpt>
      <trkpt lat="north" lon="-0.1251"><time>2026-01-05T07:00:07Z</time></trkpt>
    </trkseg>
    <trkseg>
      <trkpt lat="51.5020" lon="-0.1260"><time>2026-01-05T07:10:00Z</time></trkpt>
      <trkpt lat="51.5021" lon="-0.1261"><time>yesterday</time></trkpt>
      <trkpt lat="51.5022" lon="-0.1262"><time>2026-01-05T07:10:00Z</time></trkpt>
    </trkseg>
  </trk>
</gpx>
"""

CSV = """date,item,amount,shop
2026-01-03T10:00:00Z,bread,2.40,Baker
2026-01-04T11:30:00Z,milk,1.10,
2026-01-05,"tea, green",3.99,"Corner
Shop"
not a date,jam,2.00,Baker
2026-01-06T09:00:00Z,eggs,2.80
2026-01-07T09:00:00Z,bread,2.40,Baker
"""
