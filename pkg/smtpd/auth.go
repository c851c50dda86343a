package smtpd

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"
	"golang.org/x/crypto/bcrypt"
)

// HashPassword returns a bcrypt hash of password for a User's
// PasswordHash (what `relayctl serve hash-password` prints).
func HashPassword(password string) (string, error) {
	return hashCost(password, bcrypt.DefaultCost)
}

func hashCost(password string, cost int) (string, error) {
	if password == "" {
		return "", errors.New("smtpd: empty password")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("smtpd: hash password: %w", err)
	}
	return string(h), nil
}

func checkHash(h string) error {
	if h == "" {
		return errors.New("no password_hash")
	}
	if _, err := bcrypt.Cost([]byte(h)); err != nil {
		return fmt.Errorf("password_hash is not a bcrypt hash (make one with `relayctl serve hash-password`): %w", err)
	}
	return nil
}

// dummyHash is compared against when the user does not exist, so a
// wrong user name costs as much time as a wrong password.
const dummyHash = "$2a$10$53pIJ8tGbHFoMTnqC54Uxea7P0gL6qo3PFkZLvt5aqouT5.IWFhGq"

// verify checks name and password against the users; it returns the
// user or nil.
func (rt *runtime) verify(name, password string) *User {
	u := rt.users[name]
	if u == nil {
		_ = bcrypt.CompareHashAndPassword([]byte(dummyHash), []byte(password))
		return nil
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return nil
	}
	return u
}

// loginServer is the server side of the LOGIN mechanism
// (draft-murchison-sasl-login), which go-sasl only implements as a
// client. Many applications still only speak LOGIN.
type loginServer struct {
	step     int
	username string
	auth     func(username, password string) error
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step = 1
		if response == nil { // no initial response
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.username = string(response)
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.auth(l.username, string(response))
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}

// allowedSender reports whether addr may be used by a user restricted to
// list (domains or full addresses, case-insensitive). An empty list
// allows everything.
func allowedSender(list []string, addr string) bool {
	if len(list) == 0 {
		return true
	}
	addr = strings.ToLower(addr)
	at := strings.LastIndexByte(addr, '@')
	domain := ""
	if at >= 0 {
		domain = addr[at+1:]
	}
	for _, a := range list {
		a = strings.ToLower(strings.TrimPrefix(a, "@"))
		if strings.Contains(a, "@") {
			if a == addr {
				return true
			}
		} else if domain != "" && a == domain {
			return true
		}
	}
	return false
}
