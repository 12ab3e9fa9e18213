#ifndef RPN_H
#define RPN_H

/* What evaluating one line gave. */
enum rpn_status {
    RPN_OK,        /* *result holds the value */
    RPN_EMPTY,     /* no tokens on the line: print nothing */
    RPN_DIV_ZERO,  /* division by zero */
    RPN_UNDERFLOW, /* an operator found fewer than two operands */
    RPN_TOO_MANY,  /* more than one value left at the end */
    RPN_BAD_TOKEN  /* neither an integer nor an operator */
};

/* Evaluates one line of RPN; stores the value in *result when it returns RPN_OK. */
enum rpn_status rpn_eval(const char *line, long *result);

/* The error message printed after "error: " for a status other than RPN_OK. */
const char *rpn_message(enum rpn_status status);

#endif
