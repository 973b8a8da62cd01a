package imagemeta

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
)

// XMP namespaces. xmpNS is bulkgen's own; the others are Adobe's.
const (
	xmpNS     = "urn:bulkgen:xmp:1.0/"
	xmpNoteNS = "http://ns.adobe.com/xmp/note/"
)

// xmpMeta is what bulkgen keeps in an XMP packet.
type xmpMeta struct {
	parameters    string
	hasParameters bool
	record        []byte
	// extendedGUID is set (in a JPEG's main packet) when the properties
	// live in an ExtendedXMP packet with this GUID.
	extendedGUID string
}

// buildXMP serialises m. With wrap it is a full packet with the xpacket
// processing instructions; without, the bare x:xmpmeta element that
// ExtendedXMP stores.
func buildXMP(m xmpMeta, wrap bool) []byte {
	var b bytes.Buffer
	if wrap {
		b.WriteString("<?xpacket begin=\"\ufeff\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n")
	}
	b.WriteString(`<x:xmpmeta xmlns:x="adobe:ns:meta/">` + "\n")
	b.WriteString(` <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">` + "\n")
	b.WriteString(`  <rdf:Description rdf:about="" xmlns:bulkgen="` + xmpNS + `" xmlns:xmpNote="` + xmpNoteNS + `">` + "\n")
	if m.extendedGUID != "" {
		b.WriteString("   <xmpNote:HasExtendedXMP>" + m.extendedGUID + "</xmpNote:HasExtendedXMP>\n")
	}
	if m.hasParameters {
		b.WriteString("   <bulkgen:parameters>")
		escapeXML(&b, []byte(m.parameters))
		b.WriteString("</bulkgen:parameters>\n")
	}
	if m.record != nil {
		b.WriteString("   <bulkgen:record>")
		escapeXML(&b, m.record)
		b.WriteString("</bulkgen:record>\n")
	}
	b.WriteString("  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>")
	if wrap {
		b.WriteString("\n<?xpacket end=\"w\"?>")
	}
	return b.Bytes()
}

// escapeXML escapes text for element content. Characters XML 1.0 cannot
// carry at all (most C0 controls) become U+FFFD; newlines and carriage
// returns are kept as character references so they survive parsing.
func escapeXML(b *bytes.Buffer, text []byte) {
	_ = xml.EscapeText(b, text) // bytes.Buffer writes cannot fail
}

// errNoXMP means a packet had none of bulkgen's properties.
var errNoXMP = errors.New("no bulkgen XMP properties")

// parseXMP extracts bulkgen's properties (and an ExtendedXMP pointer) from
// an XMP packet. Unknown elements are ignored.
func parseXMP(packet []byte) (xmpMeta, error) {
	var m xmpMeta
	d := xml.NewDecoder(bytes.NewReader(packet))
	d.Strict = true
	found := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return m, err
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		for _, a := range se.Attr {
			if a.Name.Space == xmpNoteNS && a.Name.Local == "HasExtendedXMP" {
				m.extendedGUID, found = a.Value, true
			}
		}
		switch {
		case se.Name.Space == xmpNS && se.Name.Local == "parameters":
			var s string
			if err := d.DecodeElement(&s, &se); err != nil {
				return m, err
			}
			m.parameters, m.hasParameters, found = s, true, true
		case se.Name.Space == xmpNS && se.Name.Local == "record":
			var s string
			if err := d.DecodeElement(&s, &se); err != nil {
				return m, err
			}
			m.record, found = []byte(s), true
		case se.Name.Space == xmpNoteNS && se.Name.Local == "HasExtendedXMP":
			var s string
			if err := d.DecodeElement(&s, &se); err != nil {
				return m, err
			}
			m.extendedGUID, found = s, true
		}
	}
	if !found {
		return m, errNoXMP
	}
	return m, nil
}
