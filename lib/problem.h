/* problem: what was wrong with a client's input, for an RFC 9457 problem+json answer. */
#ifndef AG_PROBLEM_H
#define AG_PROBLEM_H

/* What a bad input was: the HTTP status, the field (JSON path such as "[3].headers.X-A", a
 * header name such as "Async-Delay", or "body" for the document as a whole), and a sentence
 * for the problem+json detail, starting with the field. */
struct problem {
	int status;
	char field[192];
	char detail[640];
};

#endif
